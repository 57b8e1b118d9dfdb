"""A site without a cloud: a stack with no burst pools and no VPN settings declares no AWS resource and calls no
AWS function, only the cluster's add-ons and teams. Adding the cloud later (the "extend" path) is shown as
``pulumi preview --diff`` would show it: the offline plans before and after, compared resource by resource by URN
and inputs: the cloud side is created and nothing that exists is updated, replaced or deleted."""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import pytest

from infra import config
from infra.plan import diff
from tests.infra.helpers import EDGE_STACKS, plan_of, stack_values

ONPREM_ONLY = next(p for p in EDGE_STACKS if p.stem == "onprem-only")
# What the example site has beyond the on-prem-only stack: the VPN (with the region and VPC it lives in), then
# the pools that join over it.
VPN_KEYS = ("aws:region", "herd:onpremVpnPublicIp", "herd:vpcCidr", "herd:availabilityZones")
CLOUD_KEYS = (*VPN_KEYS, "herd:pools")


@pytest.fixture(scope="module")
def onprem_values() -> dict[str, Any]:
    return stack_values(ONPREM_ONLY)


@pytest.fixture(scope="module")
def onprem_plan(onprem_values):
    return plan_of(onprem_values)


def _plus(values: dict[str, Any], example: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """``values`` with the example's values of ``keys`` added."""
    return {**copy.deepcopy(values), **{k: copy.deepcopy(example[k]) for k in keys}}


def _with_caps(values: dict[str, Any], example: dict[str, Any]) -> dict[str, Any]:
    """``values`` with each team given the example's cloud cap."""
    caps = {t["name"]: t["cloud"] for t in example["herd:teams"]}
    out = copy.deepcopy(values)
    out["herd:teams"] = [{**t, "cloud": caps[t["name"]]} for t in out["herd:teams"]]
    return out


def test_the_onprem_only_stack_is_the_example_site_without_its_cloud(onprem_values, example_values):
    # GIVEN the on-prem-only stack, WHEN the example's VPN keys and pools and its teams' cloud caps are added
    grown = _with_caps(_plus(onprem_values, example_values, CLOUD_KEYS), example_values)
    # THEN it is the example stack: the extend path below grows the example site, not a made-up one
    assert grown == example_values


def test_an_onprem_only_stack_reads_as_one(onprem_values):
    cfg = config.load(onprem_values)
    assert (cfg.vpn, cfg.aws_region, cfg.pools) == (False, None, [])


def test_it_declares_no_aws_resource_and_calls_no_aws_function(onprem_plan):
    assert onprem_plan.cloud() == []
    assert onprem_plan.invokes == []
    # Only the cluster's provider, herd's components and Kubernetes objects and releases: no random token either
    assert {r.type for r in onprem_plan.resources if not r.type.startswith(("kubernetes:", "herd:"))} == {
        "pulumi:providers:kubernetes"
    }


def test_it_declares_the_add_ons_and_the_teams(onprem_plan):
    kinds = Counter(o["kind"] for o in onprem_plan.kubernetes_objects())
    assert kinds == {
        "Namespace": 3,  # herd-system, vision, nlp
        "ResourceQuota": 2,
        "LimitRange": 2,
        "Role": 2,
        "RoleBinding": 2,
        "PersistentVolumeClaim": 2,
        "StorageClass": 1,
        "PriorityClass": 3,
        "ValidatingAdmissionPolicy": 4,  # the teams' storage (2) and their queues (2)
        "ValidatingAdmissionPolicyBinding": 4,
        "ResourceFlavor": 2,  # on-prem only: onprem and onprem-gpu
        "ClusterQueue": 2,
        "LocalQueue": 2,
    }
    releases = {r.inputs["chart"].rsplit("/", 1)[-1] for r in onprem_plan.of_type("kubernetes:helm.sh/v3:Release")}
    assert releases == {"tigera-operator", "nvidia-device-plugin", "nfs-subdir-external-provisioner", "kueue"}


def test_its_outputs_are_only_what_exists(onprem_plan):
    # No vpcId, subnets, VPN router settings or join token parameter: `pulumi stack output` lists none of them
    assert onprem_plan.outputs == {"burstPools": ({}, False)}


def test_a_region_alone_adds_no_cloud(onprem_values):
    plan = plan_of({**onprem_values, "aws:region": "eu-central-1"})
    assert plan.cloud() == [] and plan.invokes == []


# (id, keys of the example present before, keys present after)
STAGES = [
    ("vpn-and-pools-at-once", (), CLOUD_KEYS),
    ("vpn-first", (), VPN_KEYS),
    ("pools-after-the-vpn", VPN_KEYS, CLOUD_KEYS),
]


@pytest.mark.parametrize(("before_keys", "after_keys"), [s[1:] for s in STAGES], ids=[s[0] for s in STAGES])
def test_extending_creates_the_cloud_and_changes_nothing_that_exists(
    onprem_values, example_values, before_keys, after_keys
):
    # GIVEN the plan of the stack as it is, and of the stack with more of the example's cloud keys
    before = plan_of(_plus(onprem_values, example_values, before_keys))
    after = plan_of(_plus(onprem_values, example_values, after_keys))

    # THEN every resource there is now is also in the new plan, with the same URN and the same inputs
    now = {r.urn: r for r in after.resources}
    for r in before.resources:
        assert r.urn in now, r.urn
        assert now[r.urn].inputs == r.inputs, r.urn
        assert now[r.urn].protect == r.protect, r.urn
    # AND so `pulumi up` would only create: no update, no replacement, no delete
    change = diff(before, after)
    assert (change.updates, change.deletes, change.only_creates) == ([], [], True)
    assert change.creates and all(r.urn not in {b.urn for b in before.resources} for r in change.creates)


def test_what_the_first_pools_create(onprem_plan, onprem_values, example_values):
    change = diff(onprem_plan, plan_of(_plus(onprem_values, example_values, CLOUD_KEYS)))
    components = Counter(r.kind for r in change.creates if not r.custom)
    assert components == {"Network": 1, "BootstrapToken": 1, "BurstNodePool": 2, "ClusterAutoscaler": 1}
    # In the cluster: the join token's Secret, the autoscaler (its release and credentials) and each pool's flavor
    in_cluster = {(r.kind, r.name) for r in change.creates if r.type.startswith("kubernetes:")}
    assert in_cluster == {
        ("Secret", "join-secret"),
        ("Secret", "autoscaler-credentials"),
        ("Release", "cluster-autoscaler"),
        ("ResourceFlavor", "flavor-gpu-a10g-spot"),
        ("ResourceFlavor", "flavor-cpu-burst"),
    }
    assert {"aws:ec2/vpnConnection:VpnConnection", "aws:ssm/parameter:Parameter"} <= {
        r.type for r in change.creates
    }


def test_giving_teams_a_cloud_cap_then_updates_their_queues_and_quotas_in_place(
    onprem_values, example_values, example_plan
):
    # GIVEN the extended site, WHEN its teams get the example's cloud caps (the example stack)
    change = diff(plan_of(_plus(onprem_values, example_values, CLOUD_KEYS)), example_plan)
    # THEN only the teams' ClusterQueues (the cloud flavors, the on-prem share less the cap) and ResourceQuotas
    # (what the other team may lend shrinks by its cap) change, in place
    assert (change.creates, change.deletes) == ([], [])
    by_urn = {r.urn: r for r in example_plan.resources}
    assert sorted((by_urn[urn].name, keys) for urn, keys in change.updates) == [
        ("queue-nlp", ["spec"]),
        ("queue-vision", ["spec"]),
        ("team-nlp-quota", ["spec"]),
        ("team-vision-quota", ["spec"]),
    ]


VPN_IP = {"herd:onpremVpnPublicIp": "203.0.113.10"}
REGION = {"aws:region": "eu-central-1"}
POOLS = [{"name": "gpu", "tier": "gpu", "instanceTypes": ["g5.xlarge"], "maxSize": 2}]

# (id, overrides over the on-prem-only stack, the exact one-line error)
REFUSED = [
    (
        "pools-without-the-vpn",
        {"herd:pools": POOLS, **REGION},
        "herd:pools: a burst pool needs herd:onpremVpnPublicIp (the VPN it joins over)",
    ),
    (
        "pools-with-an-empty-vpn-address",
        {"herd:pools": POOLS, "herd:onpremVpnPublicIp": "", **REGION},
        "herd:pools: a burst pool needs herd:onpremVpnPublicIp (the VPN it joins over)",
    ),
    (
        "pools-without-the-vpn-or-a-region",
        {"herd:pools": POOLS},
        "herd:pools: a burst pool needs herd:onpremVpnPublicIp (the VPN it joins over)",
    ),
    (
        "vpn-without-a-region",
        VPN_IP,
        "aws:region: required; set it with `pulumi config set aws:region <region>`",
    ),
    (
        "vpn-whose-vpc-overlaps-the-site",
        {**VPN_IP, **REGION, "herd:onpremCidrs": ["10.20.0.0/22", "10.20.8.0/24", "10.200.0.0/16"]},
        "herd:vpcCidr: 10.200.0.0/16 overlaps herd:onpremCidrs[2] (10.200.0.0/16)",
    ),
    (
        "vpn-with-the-control-plane-off-the-tunnel",
        {**VPN_IP, **REGION, "herd:controlPlaneEndpoint": "10.99.0.1:6443"},
        "herd:controlPlaneEndpoint: 10.99.0.1 is not inside any of herd:onpremCidrs, so burst nodes cannot "
        "reach it",
    ),
    (
        "vpn-with-a-private-router-address",
        {"herd:onpremVpnPublicIp": "10.20.0.1", **REGION},
        "herd:onpremVpnPublicIp: 10.20.0.1 is in 10.0.0.0/8, private (RFC 1918): not an address the internet "
        "routes; give the on-prem VPN router's public IPv4 address",
    ),
    (
        "cloud-cap-without-pools",
        {"herd:teams": [{"name": "vision", "cloud": {"gpu": 1}}]},
        "herd:teams[0].cloud: a cloud cap needs burst pools (herd:pools is empty)",
    ),
    (
        "region-typo-without-a-cloud",
        {"aws:region": "eu-centrl-1"},
        "aws:region: 'eu-centrl-1' is not an AWS region; did you mean eu-central-1?",
    ),
    (
        "mtu-that-a-later-vpn-cannot-carry",
        {"herd:cniMtu": 1450},
        "herd:cniMtu: 1450 does not fit VXLAN inside the VPN tunnel (at most 1386)",
    ),
    (
        "weak-tunnel-crypto-waiting-for-the-vpn",
        {"herd:vpnTunnelOptions": {"phase1IntegrityAlgorithms": ["SHA1"]}},
        "herd:vpnTunnelOptions.phase1IntegrityAlgorithms[0]: 'SHA1' is refused: SHA-1 is broken; use SHA2-256, "
        "SHA2-384 or SHA2-512",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_refused_in_one_exact_line(onprem_values, overrides, message):
    with pytest.raises(config.ConfigError) as info:
        config.load({**copy.deepcopy(onprem_values), **overrides})
    assert str(info.value) == message


# What only a VPN makes wrong is accepted without one (each is refused above once the VPN is there).
ACCEPTED = [
    (
        "site-network-holding-the-default-vpc-range",
        {"herd:onpremCidrs": ["10.20.0.0/22", "10.20.8.0/24", "10.200.0.0/16"]},
    ),
    ("control-plane-outside-the-listed-ranges", {"herd:controlPlaneEndpoint": "10.99.0.1:6443"}),
    ("nas-outside-the-listed-ranges", {"herd:nfsServer": "10.99.0.5"}),
    ("explicitly-no-vpn", {"herd:onpremVpnPublicIp": ""}),
]


@pytest.mark.parametrize("overrides", [a[1] for a in ACCEPTED], ids=[a[0] for a in ACCEPTED])
def test_what_only_a_vpn_makes_wrong_is_accepted_without_one(onprem_values, overrides):
    cfg = config.load({**copy.deepcopy(onprem_values), **overrides})
    assert not cfg.vpn
