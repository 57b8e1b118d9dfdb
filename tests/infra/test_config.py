"""Stack config: declared once in Pulumi.yaml, validated in infra/config.py, every refusal naming the key."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
import yaml

from infra import config
from tests.infra.helpers import ALL_STACKS, REPO, stack_values

DELETE = object()
STRUCTURED = {"herd:vpnTunnelOptions", "herd:pools", "herd:poolDefaults", "herd:teams", "herd:teamDefaults"}


def test_every_declared_key_has_a_description_and_a_type_unless_structured():
    decls = config.declarations()
    assert len(decls) >= 30
    for key, decl in decls.items():
        assert decl.description, key
        if key in STRUCTURED:
            assert decl.type is None and decl.has_default, key
        else:
            assert decl.type in ("string", "integer", "boolean", "array"), key


def test_declarations_and_the_model_agree_key_for_key():
    """No key is read that is not declared, and no declared key is ignored."""
    declared = {k.removeprefix("herd:") for k in config.declarations()} - {"poolDefaults", "teamDefaults"}
    fields = {f.alias or name for name, f in config.StackConfig.model_fields.items()} - {"awsRegion"}
    assert declared == fields


def test_defaults_live_only_in_the_project_file(tmp_path):
    """Change defaults in a copy of Pulumi.yaml and the loaded config follows them."""
    doc = yaml.safe_load((REPO / "Pulumi.yaml").read_text())
    doc["config"]["vpcCidr"]["default"] = "10.210.0.0/16"
    doc["config"]["poolDefaults"]["default"]["volumeGiB"] = 77
    project = tmp_path / "Pulumi.yaml"
    project.write_text(yaml.safe_dump(doc))
    values = stack_values(REPO / "Pulumi.example.yaml")
    values.pop("herd:vpcCidr")
    for pool in values["herd:pools"]:
        pool.pop("volumeGiB", None)
    cfg = config.load(values, project)
    assert cfg.vpc_cidr == "10.210.0.0/16"
    assert {p.volume_gib for p in cfg.pools} == {77}


@pytest.mark.parametrize("stack", ALL_STACKS, ids=lambda p: p.stem)
def test_committed_stacks_are_valid(stack):
    config.load(stack_values(stack))


def test_values_as_the_cli_hands_them_over_decode_to_their_types(example_values):
    """`pulumi up` passes every value as a string, structured ones as JSON."""
    as_cli = {k: v if isinstance(v, str) else json.dumps(v) for k, v in example_values.items()}
    assert config.load(as_cli) == config.load(example_values)


def test_example_stack_reads_as_intended(example_values):
    cfg = config.load(example_values)
    gpu, cpu = cfg.pools
    assert (gpu.min_size, gpu.max_size, gpu.spot, gpu.gpu.count) == (0, 4, True, 1)
    assert gpu.gpu.product_label == "NVIDIA-A10G"
    assert (cpu.tier, cpu.spot, cpu.gpu, cpu.volume_gib) == ("high-cpu", False, None, 200)
    assert gpu.expander_priority > cpu.expander_priority  # spot (cheaper) first
    vision, nlp = cfg.teams
    assert vision.quota.gpu == 8 and vision.quota.cpu == "64"  # merged key by key over teamDefaults
    assert nlp.quota.gpu == 4


def _pool(**over: Any) -> dict[str, Any]:
    return {"name": "p", "tier": "gpu", "instanceTypes": ["g5.xlarge"], "maxSize": 2, **over}


# (id, {key: value or DELETE}, the key the error must name, a fragment of the problem)
BAD = [
    ("missing-endpoint", {"herd:controlPlaneEndpoint": DELETE}, "herd:controlPlaneEndpoint", "required"),
    ("missing-region", {"aws:region": DELETE}, "aws:region", "required"),
    ("bad-region", {"aws:region": "Frankfurt"}, "aws:region", "not an AWS region"),
    ("unknown-key", {"herd:vpcCdir": "10.0.0.0/16"}, "herd:vpcCdir", "did you mean herd:vpcCidr"),
    ("old-kubernetes", {"herd:kubernetesVersion": "1.34.6"}, "herd:kubernetesVersion", "not supported"),
    ("version-no-patch", {"herd:kubernetesVersion": "1.36"}, "herd:kubernetesVersion", "MAJOR.MINOR.PATCH"),
    ("ca-hash", {"herd:controlPlaneCaCertHash": "sha1:abc"}, "herd:controlPlaneCaCertHash", "sha256"),
    ("pod-overlaps-onprem", {"herd:podCidr": "10.20.0.0/16"}, "herd:podCidr", "overlaps herd:onpremCidrs[0]"),
    ("vpc-overlaps-services", {"herd:vpcCidr": "10.96.0.0/16"}, "herd:serviceCidr", "overlaps herd:vpcCidr"),
    (
        "onprem-overlap-each-other",
        {"herd:onpremCidrs": ["10.20.0.0/22", "10.20.2.0/24"]},
        "herd:onpremCidrs[1]",
        "overlaps herd:onpremCidrs[0]",
    ),
    ("cidr-host-bits", {"herd:vpcCidr": "10.200.0.1/16"}, "herd:vpcCidr", "not a network"),
    ("vpc-too-small", {"herd:vpcCidr": "10.200.0.0/24"}, "herd:vpcCidr", "between /16 and /20"),
    ("no-onprem", {"herd:onpremCidrs": []}, "herd:onpremCidrs", "at least 1"),
    (
        "private-vpn-ip",
        {"herd:onpremVpnPublicIp": "192.168.1.1"},
        "herd:onpremVpnPublicIp",
        "not an address the internet routes",
    ),
    (
        "endpoint-off-vpn",
        {"herd:controlPlaneEndpoint": "10.99.0.1:6443"},
        "herd:controlPlaneEndpoint",
        "not inside any of herd:onpremCidrs",
    ),
    ("endpoint-no-port", {"herd:controlPlaneEndpoint": "10.20.0.10"}, "herd:controlPlaneEndpoint", "host:port"),
    ("nas-off-vpn", {"herd:nfsServer": "10.99.0.5"}, "herd:nfsServer", "not inside"),
    ("nfs-relative-path", {"herd:nfsPath": "export/herd"}, "herd:nfsPath", "absolute"),
    ("mtu-too-big", {"herd:cniMtu": 1450}, "herd:cniMtu", "does not fit"),
    ("az-count", {"herd:availabilityZones": 9}, "herd:availabilityZones", "less than or equal to 6"),
    ("boolean-word", {"herd:natPerAz": "yes"}, "herd:natPerAz", "expected boolean"),
    ("integer-word", {"herd:availabilityZones": "two"}, "herd:availabilityZones", "expected integer"),
    ("cni-unknown", {"herd:cni": "flannel"}, "herd:cni", "calico"),
    ("pools-not-list", {"herd:pools": {"name": "x"}}, "herd:pools", "must be a list"),
    ("pool-min-over-max", {"herd:pools": [_pool(minSize=3)]}, "herd:pools[0].maxSize", "below minSize (3)"),
    ("pool-max-word", {"herd:pools": [_pool(maxSize="many")]}, "herd:pools[0].maxSize", "valid integer"),
    (
        "pool-missing-max",
        {"herd:pools": [{"name": "p", "tier": "gpu", "instanceTypes": ["g5.xlarge"]}]},
        "herd:pools[0].maxSize",
        "required",
    ),
    (
        "gpu-pool-without-gpu",
        {"herd:pools": [_pool(instanceTypes=["g5.xlarge", "m5.large"])]},
        "herd:pools[0].instanceTypes[1]",
        "has no NVIDIA GPU",
    ),
    ("cpu-pool-on-gpu", {"herd:pools": [_pool(tier="high-cpu")]}, "herd:pools[0].instanceTypes[0]", "has GPUs"),
    (
        "mixed-gpu-models",
        {"herd:pools": [_pool(instanceTypes=["g5.xlarge", "g6.xlarge"])]},
        "herd:pools[0].instanceTypes[1]",
        "g6.xlarge has 1x NVIDIA L4 but g5.xlarge has 1x NVIDIA A10G; cluster-autoscaler builds one node template",
    ),
    (
        "mixed-gpu-counts",
        {"herd:pools": [_pool(instanceTypes=["g5.12xlarge", "g5.xlarge", "g5.2xlarge"])]},
        "herd:pools[0].instanceTypes[1]",
        "g5.xlarge has 1x NVIDIA A10G but g5.12xlarge has 4x NVIDIA A10G;",
    ),
    (
        "amd-accelerator",
        {"herd:pools": [_pool(instanceTypes=["g4ad.xlarge"])]},
        "herd:pools[0].instanceTypes[0]",
        "has AMD GPUs, not NVIDIA ones",
    ),
    (
        "graviton",
        {"herd:pools": [_pool(tier="general", instanceTypes=["m7g.large"])]},
        "herd:pools[0].instanceTypes[0]",
        "arm64",
    ),
    (
        "unknown-gpu-size",
        {"herd:pools": [_pool(instanceTypes=["g5.3xlarge"])]},
        "herd:pools[0].instanceTypes[0]",
        "not a g5 size",
    ),
    ("bad-tier", {"herd:pools": [_pool(tier="huge")]}, "herd:pools[0].tier", "not one of"),
    ("bad-pool-name", {"herd:pools": [_pool(name="GPU_Pool")]}, "herd:pools[0].name", "lower-case"),
    ("duplicate-pool", {"herd:pools": [_pool(), _pool()]}, "herd:pools[1].name", "already the name"),
    ("pool-field-typo", {"herd:pools": [_pool(maxsize=3)]}, "herd:pools[0].maxsize", "did you mean maxSize"),
    (
        "label-bad-value",
        {"herd:pools": [_pool(labels={"example.com/team": "a b"})]},
        "herd:pools[0].labels",
        "not a valid label value",
    ),
    (
        "label-restricted-domain",
        {"herd:pools": [_pool(labels={"node.kubernetes.io/x": "y"})]},
        "herd:pools[0].labels",
        "kubelets may not set",
    ),
    (
        "label-owned-by-taxonomy",
        {"herd:pools": [_pool(labels={"herd.dev/tier": "gpu"})]},
        "herd:pools[0].labels",
        "set by herd",
    ),
    (
        "taint-bad-effect",
        {"herd:pools": [_pool(taints=[{"key": "a.io/b", "value": "c", "effect": "Never"}])]},
        "herd:pools[0].taints[0].effect",
        "not one of",
    ),
    (
        "taint-gpu-key",
        {"herd:pools": [_pool(taints=[{"key": "nvidia.com/gpu", "effect": "NoSchedule"}])]},
        "herd:pools[0].taints[0].key",
        "set by herd",
    ),
    ("bad-ami", {"herd:pools": [_pool(ami="ubuntu")]}, "herd:pools[0].ami", "not an AMI id"),
    (
        "pool-defaults-volume",
        {
            "herd:poolDefaults": {
                "minSize": 0,
                "capacityType": "spot",
                "volumeGiB": 8,
                "ami": "",
                "labels": {},
                "taints": [],
            }
        },
        "herd:poolDefaults.volumeGiB",
        "greater than or equal to 30",
    ),
    ("team-kube-namespace", {"herd:teams": [{"name": "kube-ml"}]}, "herd:teams[0].name", "Kubernetes owns"),
    (
        "team-quantity",
        {"herd:teams": [{"name": "a", "quota": {"memory": "lots"}}]},
        "herd:teams[0].quota.memory",
        "not a Kubernetes quantity",
    ),
    (
        "team-limit-over-quota",
        {"herd:teams": [{"name": "a", "limits": {"maxCpu": "128"}}]},
        "herd:teams[0].limits.maxCpu",
        "more than the quota",
    ),
    (
        "team-request-over-limit",
        {"herd:teams": [{"name": "a", "limits": {"defaultRequestMemory": "16Gi"}}]},
        "herd:teams[0].limits.defaultRequestMemory",
        "more than defaultMemory",
    ),
    ("duplicate-team", {"herd:teams": [{"name": "a"}, {"name": "a"}]}, "herd:teams[1].name", "already the name"),
    ("claim-name", {"herd:resultsClaimName": "Results!"}, "herd:resultsClaimName", "not a valid Kubernetes"),
    (
        "duration",
        {"herd:autoscalerScaleDownUnneededTime": "ten minutes"},
        "herd:autoscalerScaleDownUnneededTime",
        "Go duration",
    ),
    (
        "rotation-days",
        {"herd:joinTokenRotationDays": 0},
        "herd:joinTokenRotationDays",
        "greater than or equal to 1",
    ),
    ("cluster-name", {"herd:clusterName": "Lab Cluster"}, "herd:clusterName", "lower-case"),
]


@pytest.mark.parametrize(("overrides", "key", "fragment"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_config_is_refused_naming_the_key(example_values, overrides, key, fragment):
    values = copy.deepcopy(example_values)
    for k, v in overrides.items():
        if v is DELETE:
            values.pop(k)
        else:
            values[k] = v
    with pytest.raises(config.ConfigError) as info:
        config.load(values)
    assert info.value.key == key, str(info.value)
    assert fragment in info.value.problem, str(info.value)
    assert "\n" not in str(info.value)  # one line


def test_there_are_at_least_fifteen_distinct_refusals():
    assert len(BAD) >= 15
    assert len({b[2] for b in BAD}) >= 15  # distinct keys named, not one check repeated
