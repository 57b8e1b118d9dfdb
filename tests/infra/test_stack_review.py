"""What an outside review of the stack config found, each refused in one exact line or carried into the plan:
submitters that are Kubernetes' own system: groups, weak VPN tunnel crypto, 4-byte BGP ASNs, instance types outside
the table, availability-zone counts a region lacks, and VPN peer addresses the internet does not route."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from infra import config
from infra.network import customer_gateway_asn
from infra.plan import run_plan
from tests.infra.helpers import NOW

VPN = "aws:ec2/vpnConnection:VpnConnection"
CGW = "aws:ec2/customerGateway:CustomerGateway"
SUBNET = "aws:ec2/subnet:Subnet"
LIMITS = {
    "defaultCpu": "2",
    "defaultMemory": "8Gi",
    "defaultRequestCpu": "500m",
    "defaultRequestMemory": "2Gi",
    "maxCpu": "32",
    "maxMemory": "128Gi",
}
QUOTA = {"cpu": "64", "memory": "256Gi", "gpu": 4, "pods": 200}


def _pool(*types: str, tier: str = "gpu") -> dict[str, Any]:
    return {"herd:pools": [{"name": "p", "tier": tier, "instanceTypes": list(types), "maxSize": 2}]}


def _team(*submitters: str) -> dict[str, Any]:
    return {"herd:teams": [{"name": "vision", "submitters": list(submitters)}]}


def _tunnels(**options: list) -> dict[str, Any]:
    return {"herd:vpnTunnelOptions": options}


def _with(example_values: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    values = copy.deepcopy(example_values)
    values.update(copy.deepcopy(overrides))
    return values


NEVER_SYSTEM = "submitters must be groups of the team's own people, never system: ones"
NOT_ROUTED = "not an address the internet routes; give the on-prem VPN router's public IPv4 address"

# (id, stack overrides over the example, the exact one-line error)
REFUSED = [
    # --- item 2: Kubernetes' own system: groups as submitters
    (
        "submitters-unauthenticated",
        _team("ml-vision", "system:unauthenticated"),
        "herd:teams[0].submitters[1]: 'system:unauthenticated' is the group of every request without credentials; "
        + NEVER_SYSTEM,
    ),
    (
        "submitters-anonymous",
        _team("system:anonymous"),
        "herd:teams[0].submitters[0]: 'system:anonymous' is the user Kubernetes gives requests without "
        "credentials; " + NEVER_SYSTEM,
    ),
    (
        "submitters-authenticated",
        _team("system:authenticated"),
        "herd:teams[0].submitters[0]: 'system:authenticated' is the group of every user and service account with "
        "any valid credential; " + NEVER_SYSTEM,
    ),
    (
        "submitters-serviceaccounts",
        _team("system:serviceaccounts"),
        "herd:teams[0].submitters[0]: 'system:serviceaccounts' is the group of every service account in the "
        "cluster; " + NEVER_SYSTEM,
    ),
    (
        "submitters-other-system",
        _team("system:serviceaccounts:vision"),
        "herd:teams[0].submitters[0]: 'system:serviceaccounts:vision' is a name Kubernetes reserves for its own "
        "groups and users; " + NEVER_SYSTEM,
    ),
    (
        "submitters-from-team-defaults",
        {
            "herd:teams": [{"name": "vision"}],
            "herd:teamDefaults": {"submitters": ["system:masters"], "quota": QUOTA, "limits": LIMITS},
        },
        "herd:teamDefaults.submitters[0]: 'system:masters' is the group that is cluster-admin; " + NEVER_SYSTEM,
    ),
    # --- item 3: VPN tunnel crypto
    (
        "tunnel-ikev1",
        _tunnels(ikeVersions=["ikev1", "ikev2"]),
        "herd:vpnTunnelOptions.ikeVersions[0]: 'ikev1' is refused: herd's tunnels use IKEv2 only",
    ),
    (
        "tunnel-aes128",
        _tunnels(phase2EncryptionAlgorithms=["AES256", "AES128"]),
        "herd:vpnTunnelOptions.phase2EncryptionAlgorithms[1]: 'AES128' is refused: herd's tunnels use 256-bit "
        "AES (AES256 or AES256-GCM-16)",
    ),
    (
        "tunnel-sha1",
        _tunnels(phase1IntegrityAlgorithms=["SHA2-256", "SHA1"]),
        "herd:vpnTunnelOptions.phase1IntegrityAlgorithms[1]: 'SHA1' is refused: SHA-1 is broken; use SHA2-256, "
        "SHA2-384 or SHA2-512",
    ),
    (
        "tunnel-dh2",
        _tunnels(phase1DhGroupNumbers=[2, 14]),
        "herd:vpnTunnelOptions.phase1DhGroupNumbers[0]: 2 is refused: DH group 2 (1024-bit MODP) is too small; "
        "use groups 14 to 21",
    ),
    (
        "tunnel-dh5",
        _tunnels(phase2DhGroupNumbers=[5]),
        "herd:vpnTunnelOptions.phase2DhGroupNumbers[0]: 5 is refused: DH group 5 (1536-bit MODP) is too small; "
        "use groups 14 to 21",
    ),
    (
        "tunnel-dh22",
        _tunnels(phase2DhGroupNumbers=[19, 22]),
        "herd:vpnTunnelOptions.phase2DhGroupNumbers[1]: 22 is refused: RFC 8247 says not to use DH group 22 "
        "(1024-bit MODP, 160-bit subgroup); use groups 14 to 21",
    ),
    (
        "tunnel-typo",
        _tunnels(phase1EncryptionAlgorithms=["AES-256-GCM"]),
        "herd:vpnTunnelOptions.phase1EncryptionAlgorithms[0]: 'AES-256-GCM' is not one of AES256, AES256-GCM-16; "
        "did you mean AES256-GCM-16?",
    ),
    (
        "tunnel-twice",
        _tunnels(phase1DhGroupNumbers=[19, 19]),
        "herd:vpnTunnelOptions.phase1DhGroupNumbers[1]: 19 is listed twice",
    ),
    (
        "tunnel-empty",
        _tunnels(ikeVersions=[]),
        "herd:vpnTunnelOptions.ikeVersions: List should have at least 1 item after validation, not 0",
    ),
    (
        "tunnel-unknown-field",
        _tunnels(phase1DHGroupNumbers=[14]),
        "herd:vpnTunnelOptions.phase1DHGroupNumbers: unknown field",
    ),
    # --- item 4: BGP ASNs
    (
        "asn-as-trans",
        {"herd:onpremBgpAsn": 23456},
        "herd:onpremBgpAsn: 23456 is AS_TRANS, the stand-in for 4-byte ASNs (RFC 6793), never a router's own",
    ),
    (
        "asn-too-big",
        {"herd:onpremBgpAsn": 4294967295},
        "herd:onpremBgpAsn: Input should be less than or equal to 4294967294",
    ),
    # --- item 5: instance types outside the table
    (
        "type-size-typo",
        _pool("c6i.8xlarg", tier="high-cpu"),
        "herd:pools[0].instanceTypes[0]: c6i.8xlarg is not a c6i size; did you mean c6i.8xlarge?",
    ),
    (
        "type-family-typo",
        _pool("m7ii.large", tier="general"),
        "herd:pools[0].instanceTypes[0]: m7ii.large: m7ii is not an instance family herd knows; did you mean "
        "m7i.large?",
    ),
    (
        "type-unknown-family",
        _pool("zz9.large", tier="general"),
        "herd:pools[0].instanceTypes[0]: zz9.large: zz9 is not an instance family herd knows (its table, "
        "infra/instance_types.yaml, lists NVIDIA GPU, general purpose, compute and memory optimized families)",
    ),
    (
        "type-gpu-size",
        _pool("p5e.24xlarge"),
        "herd:pools[0].instanceTypes[0]: p5e.24xlarge is not a p5e size; did you mean p5e.48xlarge?",
    ),
    (
        "type-h200-in-cpu-pool",
        _pool("p5en.48xlarge", tier="high-cpu"),
        "herd:pools[0].instanceTypes[0]: p5en.48xlarge has GPUs; put it in a pool with tier gpu so it is tainted "
        "for GPU work only",
    ),
    (
        "type-b200-in-cpu-pool",
        _pool("p6-b200.48xlarge", tier="general"),
        "herd:pools[0].instanceTypes[0]: p6-b200.48xlarge has GPUs; put it in a pool with tier gpu so it is "
        "tainted for GPU work only",
    ),
    (
        "type-fractional-gpu",
        _pool("g6f.xlarge"),
        "herd:pools[0].instanceTypes[0]: g6f.xlarge carries a fraction of one NVIDIA L4 (a vGPU slice); herd's "
        "node templates count whole GPUs",
    ),
    (
        "type-grace",
        _pool("p6e-gb200.36xlarge"),
        "herd:pools[0].instanceTypes[0]: p6e-gb200.36xlarge is arm64 (NVIDIA Grace CPUs, sold as UltraServers); "
        "burst nodes are amd64",
    ),
    (
        "type-graviton",
        _pool("c7gn.large", tier="high-cpu"),
        "herd:pools[0].instanceTypes[0]: c7gn.large is arm64 (Graviton); burst nodes are amd64",
    ),
    (
        "type-trainium",
        _pool("trn2.48xlarge"),
        "herd:pools[0].instanceTypes[0]: trn2.48xlarge has AWS Trainium accelerators, no NVIDIA GPU",
    ),
    (
        "type-cpu-in-gpu-pool",
        _pool("g6e.xlarge", "r7i.2xlarge"),
        "herd:pools[0].instanceTypes[1]: r7i.2xlarge has no NVIDIA GPU but the pool's tier is gpu",
    ),
    (
        "type-not-a-name",
        _pool("g5 xlarge"),
        "herd:pools[0].instanceTypes[0]: 'g5 xlarge' is not an EC2 instance type name (family.size)",
    ),
    # --- item 6: availability zones
    (
        "zones-more-than-the-region",
        {"herd:availabilityZones": 4},
        "herd:availabilityZones: 4, but eu-central-1 has 3 availability zones",
    ),
    (
        "zones-more-than-us-east-1",
        {"aws:region": "us-east-1", "herd:availabilityZones": 7},
        "herd:availabilityZones: Input should be less than or equal to 6",
    ),
    (
        "region-typo",
        {"aws:region": "eu-centrl-1"},
        "aws:region: 'eu-centrl-1' is not an AWS region; did you mean eu-central-1?",
    ),
    # --- item 7: VPN peer addresses the internet does not route
    (
        "peer-class-e",
        {"herd:onpremVpnPublicIp": "240.0.0.1"},
        f"herd:onpremVpnPublicIp: 240.0.0.1 is in 240.0.0.0/4, reserved (class E): {NOT_ROUTED}",
    ),
    (
        "peer-broadcast",
        {"herd:onpremVpnPublicIp": "255.255.255.255"},
        f"herd:onpremVpnPublicIp: 255.255.255.255 is in 240.0.0.0/4, reserved (class E): {NOT_ROUTED}",
    ),
    (
        "peer-cgnat",
        {"herd:onpremVpnPublicIp": "100.72.1.9"},
        f"herd:onpremVpnPublicIp: 100.72.1.9 is in 100.64.0.0/10, shared carrier-grade NAT space (RFC 6598): "
        f"{NOT_ROUTED}",
    ),
    (
        "peer-multicast",
        {"herd:onpremVpnPublicIp": "239.1.2.3"},
        f"herd:onpremVpnPublicIp: 239.1.2.3 is in 224.0.0.0/4, multicast: {NOT_ROUTED}",
    ),
    (
        "peer-benchmarking",
        {"herd:onpremVpnPublicIp": "198.19.0.1"},
        f"herd:onpremVpnPublicIp: 198.19.0.1 is in 198.18.0.0/15, reserved for network benchmarking: {NOT_ROUTED}",
    ),
    (
        "peer-this-network",
        {"herd:onpremVpnPublicIp": "0.1.2.3"},
        f"herd:onpremVpnPublicIp: 0.1.2.3 is in 0.0.0.0/8, 'this network': {NOT_ROUTED}",
    ),
    (
        "peer-ietf",
        {"herd:onpremVpnPublicIp": "192.0.0.9"},
        f"herd:onpremVpnPublicIp: 192.0.0.9 is in 192.0.0.0/24, reserved for IETF protocol assignments: "
        f"{NOT_ROUTED}",
    ),
    (
        "peer-6to4-relay",
        {"herd:onpremVpnPublicIp": "192.88.99.1"},
        f"herd:onpremVpnPublicIp: 192.88.99.1 is in 192.88.99.0/24, the retired 6to4 relay anycast range: "
        f"{NOT_ROUTED}",
    ),
    (
        "peer-link-local",
        {"herd:onpremVpnPublicIp": "169.254.10.1"},
        f"herd:onpremVpnPublicIp: 169.254.10.1 is in 169.254.0.0/16, link-local: {NOT_ROUTED}",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_refused_in_one_exact_line(example_values, overrides, message):
    with pytest.raises(config.ConfigError) as info:
        config.load(_with(example_values, overrides))
    assert str(info.value) == message


@pytest.mark.parametrize(
    "overrides",
    [
        _team("ml-vision", "systems-team"),  # a group that merely starts with "system"
        _tunnels(phase1DhGroupNumbers=[19, 20, 21], phase2EncryptionAlgorithms=["AES256-GCM-16"]),
        {"herd:onpremBgpAsn": 4200000000},
        {"herd:onpremBgpAsn": 2147483648},
        {"herd:onpremVpnPublicIp": "8.8.4.4"},
        {"herd:onpremVpnPublicIp": "198.51.100.7"},  # documentation range (RFC 5737): what examples use
        {"aws:region": "us-east-1", "herd:availabilityZones": 6},
        {"aws:region": "us-west-2", "herd:availabilityZones": 4},
        _pool("p5e.48xlarge", "p5en.48xlarge"),
        _pool("c8i.96xlarge", "m7i.metal-48xl", "r7iz.32xlarge", tier="high-mem"),
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items())[:60],
)
def test_near_misses_are_accepted(example_values, overrides):
    config.load(_with(example_values, overrides))


@pytest.mark.parametrize(
    ("asn", "arguments"),
    [
        (1, {"bgp_asn": "1"}),
        (65000, {"bgp_asn": "65000"}),
        (2147483647, {"bgp_asn": "2147483647"}),
        (2147483648, {"bgp_asn_extended": "2147483648"}),
        (4200000000, {"bgp_asn_extended": "4200000000"}),
        (4294967294, {"bgp_asn_extended": "4294967294"}),
    ],
)
def test_asns_above_the_bgp_asn_range_go_to_bgp_asn_extended(asn, arguments):
    assert customer_gateway_asn(asn) == arguments


def test_a_private_4_byte_asn_reaches_the_customer_gateway_as_bgp_asn_extended(example_values):
    plan = run_plan(_with(example_values, {"herd:onpremBgpAsn": 4200000001}), now=NOW)
    (gateway,) = plan.of_type(CGW)
    assert gateway.inputs["bgpAsnExtended"] == "4200000001"
    assert "bgpAsn" not in gateway.inputs


def test_both_tunnels_permit_only_the_configured_crypto(example_plan):
    (vpn,) = example_plan.of_type(VPN)
    default = config.declarations()["herd:vpnTunnelOptions"].default
    for n in (1, 2):
        assert vpn.inputs[f"tunnel{n}IkeVersions"] == ["ikev2"]
        for field, values in default.items():
            assert vpn.inputs[f"tunnel{n}{field[0].upper()}{field[1:]}"] == values, (n, field)
    assert set(vpn.inputs["tunnel1Phase1DhGroupNumbers"]) <= set(range(14, 22))
    assert not {"SHA1", "AES128", "AES128-GCM-16", "ikev1"} & {
        v for key, values in vpn.inputs.items() if key.startswith("tunnel") for v in values
    }


def test_a_narrowed_option_merges_over_the_default(example_values):
    cfg = config.load(_with(example_values, _tunnels(phase1DhGroupNumbers=[20])))
    options = cfg.vpn_tunnel_options.by_field()
    assert options["phase1DhGroupNumbers"] == [20]
    assert options["phase2DhGroupNumbers"] == [14, 15, 16, 17, 18, 19, 20, 21]  # from the default


def test_six_zones_in_us_east_1_are_planned_one_subnet_each(example_values):
    plan = run_plan(_with(example_values, {"aws:region": "us-east-1", "herd:availabilityZones": 6}), now=NOW)
    private = sorted(r.inputs["availabilityZone"] for r in plan.of_type(SUBNET) if "private" in r.name)
    assert private == [f"us-east-1{z}" for z in "abcdef"]


def test_the_offline_plan_says_when_it_does_not_know_a_regions_zones(example_values):
    with pytest.raises(config.ConfigError) as info:
        run_plan(_with(example_values, {"aws:region": "us-iso-east-1"}), now=NOW)
    assert str(info.value) == (
        "aws:region: herd-plan does not know how many availability zones us-iso-east-1 has (add it to "
        "infra/availability_zones.yaml); `pulumi preview` asks AWS instead"
    )


def test_every_zone_count_is_of_a_region_the_provider_knows():
    from pulumi_aws import Region

    counts = {region: config.region_zones(region) for region in ("us-east-1", "us-west-2", "eu-central-1")}
    assert counts == {"us-east-1": 6, "us-west-2": 4, "eu-central-1": 3}
    known = {r.value for r in Region}
    listed = yaml.safe_load(config.ZONES_FILE.read_text())["zones"]
    assert set(listed) <= known
    assert all(3 <= n <= 6 for n in listed.values())
