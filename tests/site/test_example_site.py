"""The example site is described twice — a Pulumi stack for the cloud side, an Ansible inventory for on-prem —
and the two halves only make one cluster if they agree. These checks hold the examples to that, so a site copied
from them starts consistent."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml

from herd_local.site import NodeClass, cloud_node_classes, on_prem_node_classes
from ml_jobs import taxonomy

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack() -> dict:
    config = yaml.safe_load((REPO / "Pulumi.example.yaml").read_text())["config"]
    return {key.removeprefix("herd:"): value for key, value in config.items()}


@pytest.fixture(scope="module")
def project_defaults() -> dict:
    declared = yaml.safe_load((REPO / "Pulumi.yaml").read_text())["config"]
    return {key: entry.get("default") for key, entry in declared.items() if isinstance(entry, dict)}


@pytest.fixture(scope="module")
def inventory() -> dict:
    site = REPO / "inventory" / "example"
    hosts: dict[str, str] = {}

    def walk(group: dict) -> None:
        for name, host in (group.get("hosts") or {}).items():
            hosts[name] = (host or {}).get("ansible_host", name)
        for child in (group.get("children") or {}).values():
            walk(child or {})

    walk(yaml.safe_load((site / "hosts.yml").read_text())["all"])
    return {"vars": yaml.safe_load((site / "group_vars" / "all.yml").read_text()), "hosts": hosts}


def _stack_value(stack: dict, defaults: dict, key: str):
    return stack.get(key, defaults.get(key))


def test_both_halves_name_the_same_control_plane_endpoint(stack, inventory):
    assert stack["controlPlaneEndpoint"] == inventory["vars"]["herd_control_plane_endpoint"]


@pytest.mark.parametrize(
    ("stack_key", "inventory_key"), [("podCidr", "herd_pod_subnet"), ("serviceCidr", "herd_service_subnet")]
)
def test_pod_and_service_networks_agree(stack, project_defaults, inventory, stack_key, inventory_key):
    # kubeadm (Ansible) sets them on the control plane; Calico's IP pool (Pulumi) must use the same pod network.
    assert _stack_value(stack, project_defaults, stack_key) == inventory["vars"][inventory_key]


def test_burst_nodes_run_the_control_planes_minor(stack, inventory):
    # Burst kubelets install the stack's version; the version skew policy forbids a kubelet newer than its
    # API server's minor, and herd keeps both halves on one minor.
    cloud = stack["kubernetesVersion"].split(".")[:2]
    onprem = inventory["vars"]["herd_kubernetes_version"].split(".")[:2]
    assert cloud == onprem


def test_every_on_prem_host_is_inside_the_networks_the_vpn_routes(stack, inventory):
    networks = [ipaddress.ip_network(cidr) for cidr in stack["onpremCidrs"]]
    endpoint_host = stack["controlPlaneEndpoint"].rsplit(":", 1)[0]
    for name, address in [*inventory["hosts"].items(), ("control-plane endpoint", endpoint_host)]:
        ip = ipaddress.ip_address(address)
        assert any(ip in net for net in networks), f"{name} ({address}) is not in herd:onpremCidrs {networks}"


def test_cluster_networks_do_not_overlap_the_site_or_the_vpc(stack, project_defaults, inventory):
    ranges = {
        "pods": inventory["vars"]["herd_pod_subnet"],
        "services": inventory["vars"]["herd_service_subnet"],
        "vpc": _stack_value(stack, project_defaults, "vpcCidr"),
        **{f"onprem[{i}]": cidr for i, cidr in enumerate(stack["onpremCidrs"])},
    }
    nets = {name: ipaddress.ip_network(cidr) for name, cidr in ranges.items()}
    names = sorted(nets)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not nets[a].overlaps(nets[b]), f"{a} {nets[a]} overlaps {b} {nets[b]}"


# ------------------------------------------------------------------------------------- example specs land


def _expression_holds(expr: dict, labels: dict[str, str]) -> bool:
    key, op, values = expr["key"], expr["operator"], expr.get("values", [])
    if op == "In":
        return key in labels and labels[key] in values
    if op == "NotIn":
        return key not in labels or labels[key] not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    raise AssertionError(f"node selector operator {op} not handled by this test")


def _tolerates(tolerations: list[dict], taint: dict[str, str]) -> bool:
    for t in tolerations:
        if t.get("effect") and t["effect"] != taint["effect"]:
            continue
        if t.get("operator") == "Exists" and (not t.get("key") or t["key"] == taint["key"]):
            return True
        if t.get("key") == taint["key"] and t.get("value", "") == taint.get("value", ""):
            return True
    return False


def lands_on(pod: dict, node: NodeClass) -> bool:
    """Whether the scheduler's node filters (nodeSelector, required node affinity, taints) admit ``pod``."""
    if any(node.labels.get(k) != v for k, v in pod.get("nodeSelector", {}).items()):
        return False
    required = (
        pod.get("affinity", {})
        .get("nodeAffinity", {})
        .get("requiredDuringSchedulingIgnoredDuringExecution", {})
        .get("nodeSelectorTerms")
    )
    if required is not None and not any(
        all(_expression_holds(e, node.labels) for e in term.get("matchExpressions", [])) for term in required
    ):
        return False
    hard = [t for t in node.taints if t["effect"] in ("NoSchedule", "NoExecute")]
    return all(_tolerates(pod.get("tolerations", []), t) for t in hard)


@pytest.fixture(scope="module")
def node_classes() -> list[NodeClass]:
    return on_prem_node_classes(REPO / "inventory" / "example") + cloud_node_classes(
        yaml.safe_load((REPO / "Pulumi.example.yaml").read_text())["config"]
    )


def test_node_classes_follow_the_site(node_classes):
    # GIVEN the example site THEN the classes carry what the playbooks and Pulumi give those nodes
    by_name = {c.name: c for c in node_classes}
    assert by_name["control_plane/cp-01"].labels[taxonomy.LABELS["tier"].key] == "general"
    assert {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"} in by_name[
        "control_plane/cp-01"
    ].taints
    assert by_name["gpu_nodes/gpu-03"].labels[taxonomy.LABELS["pool"].key] == "onprem-a100"
    assert taxonomy.GPU_TAINT.as_node_taint() in by_name["pool/gpu-a10g-spot"].taints
    assert by_name["pool/cpu-burst"].labels[taxonomy.LABELS["location"].key] == "cloud"


def test_the_node_filter_refuses_what_the_scheduler_refuses(node_classes):
    # GIVEN a pod that requires tier general (the example's old selection) THEN only the tainted control plane
    # matches its labels, and the control plane's taint keeps it off: it lands nowhere on this site.
    by_name = {c.name: c for c in node_classes}
    general = {"nodeSelector": {taxonomy.LABELS["tier"].key: "general"}}
    assert not any(lands_on(general, c) for c in node_classes)
    assert lands_on(general, NodeClass("untainted", "cp-01", by_name["control_plane/cp-01"].labels, []))
    gpu = {"nodeSelector": {taxonomy.LABELS["tier"].key: "gpu"}}
    assert not lands_on(gpu, by_name["pool/gpu-a10g-spot"])
    assert lands_on({**gpu, "tolerations": [taxonomy.GPU_TAINT.as_toleration()]}, by_name["pool/gpu-a10g-spot"])


EXAMPLE_SPECS = sorted((REPO / "examples").glob("*.yaml"))


@pytest.mark.parametrize("example", EXAMPLE_SPECS, ids=[p.stem for p in EXAMPLE_SPECS])
def test_every_example_spec_can_land_on_the_example_site(example, node_classes):
    # GIVEN an example spec rendered by ml_jobs WHEN its pod's node filters meet the example site's nodes
    # THEN at least one node class admits it (otherwise the example could never be scheduled there)
    from ml_jobs.render import render
    from ml_jobs.spec import load_spec

    pod = render(load_spec(example), owner="test").job["spec"]["template"]["spec"]
    landing = [c.name for c in node_classes if lands_on(pod, c)]
    assert landing, f"{example.name} selects no node of the example site"


def test_a_spec_naming_the_burst_pools_gpu_lands_there_with_time_slicing_on():
    # GIVEN the example stack with GPU time-slicing on (GFD then labels A10G nodes NVIDIA-A10G-SHARED)
    # WHEN a spec asks for resources.gpu_product NVIDIA-A10G THEN its pods still land on the A10G pool
    from infra import burst_pool
    from infra import config as stack_config
    from ml_jobs.render import render
    from ml_jobs.spec import Experiment

    values = yaml.safe_load((REPO / "Pulumi.example.yaml").read_text())["config"]
    cfg = stack_config.load({**values, "herd:gpuTimeSlicingReplicas": 4})
    (pool,) = [p for p in cfg.pools if p.gpu is not None]
    sliced = NodeClass(pool.name, pool.name, burst_pool.node_labels(cfg, pool), burst_pool.node_taints(pool))
    assert sliced.labels[taxonomy.LABELS["gpu_product"].key] == "NVIDIA-A10G-SHARED"
    exp = Experiment(
        name="a10g", image="python:3.11", command=["python"], resources={"gpus": 1, "gpu_product": "NVIDIA-A10G"}
    )
    assert lands_on(render(exp, owner="x").job["spec"]["template"]["spec"], sliced)


def test_a_sweep_without_parallelism_fits_several_times_in_every_teams_pod_quota():
    # GIVEN the example stack's teams WHEN a sweep sets no parallelism THEN the pods its Job creates at once leave
    # room in the team's pod quota for other sweeps (else the Job controller keeps running into the quota)
    from infra import config as stack_config
    from ml_jobs.render import DEFAULT_PARALLELISM

    cfg = stack_config.load(yaml.safe_load((REPO / "Pulumi.example.yaml").read_text())["config"])
    assert cfg.teams
    for team in cfg.teams:
        assert team.quota.pods is not None
        assert team.quota.pods >= DEFAULT_PARALLELISM * 2, f"team {team.name}: quota pods={team.quota.pods}"
