"""The example site is described twice — a Pulumi stack for the cloud side, an Ansible inventory for on-prem —
and the two halves only make one cluster if they agree. These checks hold the examples to that, so a site copied
from them starts consistent."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml

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
