"""Every inventory mistake an operator makes is refused in one line naming the host (or group, or file) and the
variable, and saying what would be right.

GIVEN a copy of inventory/example with one mistake WHEN validate_inventory's check reads it THEN the check returns
exactly that one line. The site is read by Ansible itself (its inventory plugins, group_vars loading, variable
precedence and templating, in process: the hostvars the playbook's filter gets), and the check is the role's own
filter plugin; test_validate_inventory.py runs the real playbooks on a sample of these cases, end to end.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "playbooks" / "roles" / "validate_inventory"
EXAMPLE = REPO / "inventory" / "example"

Change = Callable[[Path], None]


def load_filter() -> Any:
    spec = importlib.util.spec_from_file_location("herd_inventory", ROLE / "filter_plugins" / "herd_inventory.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


herd_inventory = load_filter()


def mistakes(site: Path, limit: str = "") -> list[str]:
    """What the validation play's filter says about ``site``, with the hostvars and groups Ansible makes of it."""
    os.environ.setdefault("ANSIBLE_CONFIG", str(REPO / "ansible.cfg"))
    from ansible.inventory.manager import InventoryManager
    from ansible.parsing.dataloader import DataLoader
    from ansible.vars.hostvars import HostVars
    from ansible.vars.manager import VariableManager

    loader = DataLoader()
    inventory = InventoryManager(loader=loader, sources=[str(site)])
    hostvars = HostVars(inventory, VariableManager(loader=loader, inventory=inventory), loader)
    taxonomy = yaml.safe_load((REPO / "playbooks" / "vars" / "taxonomy.yml").read_text())
    settings = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    return herd_inventory.herd_inventory_mistakes(
        hostvars, inventory.get_groups_dict(), [str(site)], limit, taxonomy, str(ROLE.parent), settings
    )


# ---- edits of the example site, each one mistake ----
def _edit(path: Path, change: Callable[[Any], object]) -> None:
    doc = yaml.safe_load(path.read_text()) if path.exists() else {}
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def _find(doc: dict[str, Any], host: str) -> dict[str, Any]:
    for group in doc["all"]["children"].values():
        if host in group.get("hosts", {}):
            group["hosts"][host] = group["hosts"][host] or {}
            return group["hosts"][host]
    raise KeyError(host)


def on_host(host: str, **values: Any) -> Change:
    """Set variables on one host in hosts.yml."""
    return lambda site: _edit(site / "hosts.yml", lambda d: _find(d, host).update(values))


def add_host(group: str, name: str, **values: Any) -> Change:
    return lambda site: _edit(
        site / "hosts.yml", lambda d: d["all"]["children"][group]["hosts"].update({name: values})
    )


def in_group(group: str, **values: Any) -> Change:
    """Set variables in group_vars/<group>.yml."""
    return lambda site: _edit(site / "group_vars" / f"{group}.yml", lambda d: d.update(values))


def drop(group: str, name: str) -> Change:
    return lambda site: _edit(site / "group_vars" / f"{group}.yml", lambda d: d.pop(name))


def hosts_yml(change: Callable[[dict[str, Any]], Any]) -> Change:
    return lambda site: _edit(site / "hosts.yml", change)


def write(relative: str, text: str) -> Change:
    def apply(site: Path) -> None:
        (site / relative).parent.mkdir(parents=True, exist_ok=True)
        (site / relative).write_text(text)

    return apply


def rename(relative: str, new: str) -> Change:
    return lambda site: (site / relative).rename(site / new)


def remove(relative: str) -> Change:
    return lambda site: (site / relative).unlink()


def both(*changes: Change) -> Change:
    def apply(site: Path) -> None:
        for change in changes:
            change(site)

    return apply


def three_control_planes(**values: Any) -> Change:
    return both(
        add_host("control_plane", "cp-02", ansible_host="10.20.0.11"),
        add_host("control_plane", "cp-03", ansible_host="10.20.0.12"),
        in_group("all", **values),
    )


HA = {"herd_control_plane_vip": "10.20.0.9", "herd_control_plane_vip_interface": "eno1",
      "herd_control_plane_endpoint": "10.20.0.9:6443"}  # fmt: skip
ALL_HOSTS = "every host"
GPU = "group gpu_nodes (gpu-01, gpu-02, gpu-03, gpu-04)"
CPU = "group cpu_nodes (cpu-01, cpu-02)"
EXAMPLE_VARS = "(the variables are in inventory/example/group_vars/all.yml)"
MOVE_RANGE = "the cluster's ranges must overlap no site address; move the range (e.g. 10.244.0.0/16, 10.96.0.0/12)"
LABEL_RULE = "at most 63 letters, digits, '-', '_', '.', starting and ending with a letter or digit"


def _vars_under_group(d: dict[str, Any]) -> None:
    d["all"]["children"]["cpu_nodes"]["herd_node_pool"] = "big-cpu"


def _host_typo(d: dict[str, Any]) -> None:
    group = d["all"]["children"]["cpu_nodes"]
    group["host"] = group.pop("hosts")


def _var_typo(d: dict[str, Any]) -> None:
    d["all"]["children"]["gpu_nodes"]["var"] = {"herd_node_pool": "x"}


def _var_under_children(d: dict[str, Any]) -> None:
    d["all"]["children"]["herd_node_tier"] = None


def _hosts_as_list(d: dict[str, Any]) -> None:
    d["all"]["children"]["cpu_nodes"]["hosts"] = ["cpu-01", "cpu-02"]


def _host_twice_differently(d: dict[str, Any]) -> None:
    d["all"]["children"]["rack1"] = {"hosts": {"gpu-01": {"ansible_host": "10.20.0.99"}}}


def _host_in_group_typo(d: dict[str, Any]) -> None:
    d["all"]["children"]["gpu_node"] = {"hosts": {"gpu-05": {"ansible_host": "10.20.0.25"}}}


def _no_hosts(d: dict[str, Any]) -> None:
    for group in d["all"]["children"].values():
        group.pop("hosts")


# (id, change, the one line the check must say; two lines joined by " | " where one edit makes two mistakes)
CASES: list[tuple[str, Change, str]] = [
    # 1. The inventory file itself
    ("vars-directly-in-group", hosts_yml(_vars_under_group),
     "hosts.yml: group cpu_nodes: herd_node_pool sits directly in the group, where Ansible ignores it: put "
     "it under "
     "cpu_nodes.vars (or in group_vars/cpu_nodes.yml)"),
    ("hosts-key-typo", hosts_yml(_host_typo),
     "hosts.yml: group cpu_nodes: has key 'host', which Ansible ignores: did you mean hosts?"),
    ("vars-key-typo", hosts_yml(_var_typo),
     "hosts.yml: group gpu_nodes: has key 'var', which Ansible ignores: did you mean vars?"),
    ("variable-under-children", hosts_yml(_var_under_children),
     "hosts.yml: group all: herd_node_tier is a variable under children:, where Ansible makes it a group: put it "
     "under vars:"),
    ("host-listed-with-two-addresses", hosts_yml(_host_twice_differently),
     "hosts.yml: host gpu-01: ansible_host is '10.20.0.99' under group rack1 but '10.20.0.21' under group "
     "gpu_nodes: give it once"),
    ("group-vars-file-for-no-group", rename("group_vars/gpu_nodes.yml", "group_vars/gpu_node.yml"),
     "group_vars/gpu_node.yml: names no group of the inventory, so Ansible never reads it: did you mean "
     "gpu_nodes?"),
    ("group-vars-file-in-the-inventory", rename("group_vars/gpu_nodes.yml", "gpu_nodes.yml"),
     "gpu_nodes.yml: group herd_node_pool: is a string: a group holds hosts:, vars: and children: | "
     "gpu_nodes.yml: group herd_node_tier: is a string: a group holds hosts:, vars: and children:"),
    ("host-vars-file-for-no-host", write("host_vars/gpu-1.yml", "herd_node_ip: 10.20.0.21\n"),
     "host_vars/gpu-1.yml: names no host of the inventory, so Ansible never reads it: did you mean gpu-01?"),
    ("host-in-misspelt-group", hosts_yml(_host_in_group_typo),
     "gpu-05: is in none of control_plane, gpu_nodes, cpu_nodes (its groups: gpu_node): put it in exactly "
     "one; did "
     "you mean gpu_nodes?"),
    ("no-hosts-at-all", hosts_yml(_no_hosts),
     "inventory: has no hosts: it parsed, but defines none (see inventory/example/hosts.yml)"),
    # 2. Addresses and names
    ("two-servers-one-address", on_host("gpu-02", ansible_host="10.20.0.21"),
     "gpu-02: ansible_host 10.20.0.21 is also gpu-01's (gpu-01): each server needs its own address (is "
     "ansible_host set for a whole group?)"),
    ("worker-on-control-plane-address", on_host("cpu-02", ansible_host="10.20.0.10"),
     "cpu-02: ansible_host 10.20.0.10 is also the control plane's (cp-01): each server needs its own address (is "
     "ansible_host set for a whole group?)"),
    ("address-with-prefix", on_host("gpu-01", ansible_host="10.20.0.21/24"),
     "gpu-01: ansible_host 10.20.0.21/24 has a prefix length: give the address alone (10.20.0.21)"),
    ("address-with-port", on_host("gpu-01", ansible_host="10.20.0.21:22"),
     "gpu-01: ansible_host 10.20.0.21:22 has a port: give the address alone and the port in ansible_port"),
    ("address-bad-octet", on_host("gpu-01", ansible_host="10.20.0.256"),
     "gpu-01: ansible_host '10.20.0.256' is not an IP address or a DNS name (four octets 0-255, e.g. 10.20.0.21)"),
    ("address-three-octets", on_host("gpu-01", ansible_host="10.20.21"),
     "gpu-01: ansible_host '10.20.21' is not an IP address or a DNS name (four octets 0-255, e.g. 10.20.0.21)"),
    ("address-loopback", on_host("cpu-01", ansible_host="127.0.0.1"),
     "cpu-01: ansible_host 127.0.0.1 is not a server's address (loopback, unspecified, multicast or link-local): "
     "give the address the other servers reach it on"),
    ("address-a-number", on_host("cpu-01", ansible_host=10),
     "cpu-01: ansible_host is 10, a number (YAML read it so): quote it as a string"),
    ("node-ip-for-a-whole-group", in_group("cpu_nodes", herd_node_ip="10.20.0.31"),
     "cpu-02: herd_node_ip 10.20.0.31 is also cpu-01's (cpu-01): each server needs its own address (is "
     "herd_node_ip set for a whole group?)"),
    ("node-ip-with-prefix", on_host("gpu-03", herd_node_ip="10.20.0.23/24"),
     "gpu-03: herd_node_ip 10.20.0.23/24 has a prefix length: give the address alone (10.20.0.23)"),
    ("node-ip-a-name", on_host("gpu-03", herd_node_ip="gpu-03.lan"),
     "gpu-03: herd_node_ip 'gpu-03.lan' is not an IP address (four octets 0-255, e.g. 10.20.0.21)"),
    ("underscore-host-name", add_host("cpu_nodes", "cpu_03", ansible_host="10.20.0.33"),
     "cpu_03: cannot be a Node name (the inventory name becomes it): use at most 63 letters, digits, '-' and '.', "
     "starting and ending with a letter or digit (no '_'); keep the address in ansible_host"),
    ("host-name-too-long", add_host("cpu_nodes", "c" * 64, ansible_host="10.20.0.33"),
     f"{'c' * 64}: cannot be a Node name (the inventory name becomes it): use at most 63 letters, digits, '-' and "
     "'.', starting and ending with a letter or digit (no '_'); keep the address in ansible_host"),
    ("host-names-differ-by-case", add_host("cpu_nodes", "CPU-01", ansible_host="10.20.0.33"),
     "CPU-01: becomes Node cpu-01, as cpu-01 does: rename one"),
    ("host-in-two-node-groups", add_host("cpu_nodes", "gpu-01"),
     "gpu-01: is in groups gpu_nodes, cpu_nodes: put it in exactly one of control_plane, gpu_nodes, cpu_nodes"),
    # 3. Networks, as a whole site
    ("pod-overlaps-service", in_group("all", herd_pod_subnet="10.96.0.0/16"),
     "all: herd_pod_subnet 10.96.0.0/16 overlaps herd_service_subnet 10.96.0.0/12: pick ranges that share no "
     "address (e.g. 10.244.0.0/16 and 10.96.0.0/12)"),
    ("pod-range-holds-the-servers", in_group("all", herd_pod_subnet="10.16.0.0/12"),
     "all: herd_pod_subnet 10.16.0.0/12 holds the site's own cp-01 (10.20.0.10), gpu-01 (10.20.0.21), gpu-02 "
     f"(10.20.0.22) and 5 more: {MOVE_RANGE}"),
    ("service-range-too-large", in_group("all", herd_service_subnet="10.64.0.0/10"),
     "all: herd_service_subnet 10.64.0.0/10 is too large: kube-apiserver takes at most a /12 (e.g. 10.96.0.0/12)"),
    ("pod-range-too-small", in_group("all", herd_pod_subnet="10.244.0.0/25"),
     "all: herd_pod_subnet 10.244.0.0/25 is too small: each node gets a /24 of it, use a /16 (e.g. "
     "10.244.0.0/16)"),
    ("pod-range-too-few-nodes", in_group("all", herd_pod_subnet="10.244.0.0/22"),
     "all: herd_pod_subnet 10.244.0.0/22 holds 4 node ranges (/24 each) for 7 hosts: use a larger range such as "
     "a /16"),
    ("subnet-host-bits", in_group("all", herd_pod_subnet="10.244.1.0/16"),
     "all: herd_pod_subnet 10.244.1.0/16 has host bits set: use the network address 10.244.0.0/16"),
    ("subnet-not-a-cidr", in_group("all", herd_service_subnet="10.96.0.0"),
     "all: herd_service_subnet '10.96.0.0' is not an IPv4 CIDR: use the form 10.96.0.0/12"),
    ("subnet-bad-octet", in_group("all", herd_pod_subnet="10.300.0.0/16"),
     "all: herd_pod_subnet '10.300.0.0/16' is not an IPv4 CIDR: use the form 10.244.0.0/16"),
    ("subnet-ipv6", in_group("all", herd_pod_subnet="fd00::/64"),
     "all: herd_pod_subnet 'fd00::/64' is not an IPv4 CIDR: use the form 10.244.0.0/16"),
    ("subnet-link-local", in_group("all", herd_service_subnet="169.254.0.0/16"),
     "all: herd_service_subnet 169.254.0.0/16 is a reserved range (loopback, link-local, multicast): use a "
     "private "
     "range such as 10.96.0.0/12"),
    ("nfs-server-in-service-range", in_group("all", herd_nfs_server="10.96.0.5"),
     f"all: herd_service_subnet 10.96.0.0/12 holds the site's own herd_nfs_server (10.96.0.5): {MOVE_RANGE}"),
    ("nfs-server-with-export", in_group("all", herd_nfs_server="nas:/export/results"),
     "every host: herd_nfs_server 'nas:/export/results' must be the NAS's host name or address alone (the export "
     "path is the Pulumi stack's, not the inventory's)"),
    ("endpoint-without-port", in_group("all", herd_control_plane_endpoint="10.20.0.10"),
     "all: herd_control_plane_endpoint 10.20.0.10 must be host:port (a DNS name or the virtual IP, e.g. "
     "10.20.0.10:6443)"),
    ("endpoint-port-out-of-range", in_group("all", herd_control_plane_endpoint="10.20.0.10:70000"),
     "all: herd_control_plane_endpoint 10.20.0.10:70000: port 70000 is not a TCP port: use 6443"),
    ("endpoint-bad-octet", in_group("all", herd_control_plane_endpoint="10.20.0.300:6443"),
     "all: herd_control_plane_endpoint 10.20.0.300:6443: 10.20.0.300 is neither an IPv4 address nor a DNS name "
     "(each octet 0-255)"),
    ("endpoint-url", in_group("all", herd_control_plane_endpoint="https://10.20.0.10:6443"),
     "all: herd_control_plane_endpoint https://10.20.0.10:6443: https://10.20.0.10 is neither an IPv4 address nor "
     "a DNS name (each octet 0-255)"),
    ("endpoint-on-a-worker", in_group("all", herd_control_plane_endpoint="10.20.0.21:6443"),
     "all: herd_control_plane_endpoint 10.20.0.21:6443 is gpu-01's address, a worker: point it at the control "
     "plane (cp-01) or the virtual IP"),
    ("endpoint-wrong-port", in_group("all", herd_control_plane_endpoint="10.20.0.10:8443"),
     "all: herd_control_plane_endpoint 10.20.0.10:8443: the API server listens on 6443 and nothing forwards 8443: "
     "use 10.20.0.10:6443"),
    ("endpoint-no-hosts-address", in_group("all", herd_control_plane_endpoint="10.20.0.77:6443"),
     "all: herd_control_plane_endpoint 10.20.0.77:6443 is no host's address: with one control plane use its "
     "address (cp-01: 10.20.0.10:6443)"),
    ("endpoint-in-service-range", in_group("all", herd_control_plane_endpoint="10.96.0.1:6443"),
     "all: herd_service_subnet 10.96.0.0/12 holds the site's own herd_control_plane_endpoint (10.96.0.1): "
     f"{MOVE_RANGE}"),
    ("even-control-planes", add_host("control_plane", "cp-02", ansible_host="10.20.0.11"),
     "control_plane: has 2 host(s): etcd needs an odd number (1, or 3 behind herd_control_plane_vip)"),
    ("ha-without-vip", three_control_planes(),
     "all: 3 control planes need herd_control_plane_vip (the virtual IP, also the host part of "
     "herd_control_plane_endpoint, now 10.20.0.10:6443) and herd_control_plane_vip_interface (the NIC that "
     "carries it)"),
    ("ha-vip-is-a-member", three_control_planes(**{**HA, "herd_control_plane_vip": "10.20.0.11",
                                                  "herd_control_plane_endpoint": "10.20.0.11:6443"}),
     "all: herd_control_plane_vip 10.20.0.11 is cp-02's own address: the virtual IP must be a free address on the "
     "control planes' network"),
    ("ha-vip-not-an-address", three_control_planes(**{**HA, "herd_control_plane_vip": "cp-vip",
                                                      "herd_control_plane_endpoint": "cp-vip:6443"}),
     "all: herd_control_plane_vip 'cp-vip' is not an IPv4 address: give the virtual IP alone, e.g. 10.20.0.9"),
    ("ha-vip-with-prefix", three_control_planes(**{**HA, "herd_control_plane_vip": "10.20.0.9/24"}),
     "all: herd_control_plane_vip '10.20.0.9/24' is not an IPv4 address: give the virtual IP alone, e.g. "
     "10.20.0.9"),
    ("ha-endpoint-not-the-vip", three_control_planes(**{**HA, "herd_control_plane_endpoint": "10.20.0.10:6443"}),
     "all: herd_control_plane_endpoint 10.20.0.10:6443 does not point at herd_control_plane_vip 10.20.0.9: with 3 "
     "control planes use 10.20.0.9:6443"),
    ("ha-bad-interface", three_control_planes(**{**HA, "herd_control_plane_vip_interface": "eth 0"}),
     "all: herd_control_plane_vip_interface 'eth 0' is not a network interface name (e.g. eno1)"),
    ("cluster-variable-per-group", in_group("gpu_nodes", herd_pod_subnet="10.245.0.0/16"),
     f"{GPU}: herd_pod_subnet is '10.245.0.0/16' here but '10.244.0.0/16' on cp-01: it describes the whole "
     "cluster, set it once in group_vars/all.yml"),
    ("kubelet-config-per-host", on_host("gpu-01", herd_kubelet_config={"maxPods": 50}),
     "gpu-01: herd_kubelet_config is {'maxPods': 50} here but null on cp-01: it describes the whole cluster, "
     "set it "
     "once in group_vars/all.yml"),
    # 4. Per host: a group's Kubernetes version, pool, skew
    ("old-kubernetes", in_group("all", herd_kubernetes_version="1.34.6"),
     "every host: herd_kubernetes_version 1.34.6 is not supported: use a full version (e.g. 1.36.3) of one of "
     "1.35, 1.36, 1.37"),
    ("kubernetes-minor-only", in_group("all", herd_kubernetes_version="1.36"),
     "every host: herd_kubernetes_version 1.36 is not supported: use a full version (e.g. 1.36.3) of one of 1.35, "
     "1.36, 1.37"),
    ("kubernetes-version-a-number", in_group("all", herd_kubernetes_version=1.36),
     "every host: herd_kubernetes_version is 1.36, a number (YAML read it so): quote it as a string"),
    ("kubernetes-version-for-one-group", in_group("cpu_nodes", herd_kubernetes_version="1.34.2"),
     f"{CPU}: herd_kubernetes_version 1.34.2 is not supported: use a full version (e.g. 1.36.3) of one of 1.35, "
     "1.36, 1.37"),
    ("workers-newer-than-control-plane", in_group("gpu_nodes", herd_kubernetes_version="1.37.1"),
     f"{GPU}: herd_kubernetes_version 1.37.1 does not fit the control plane's 1.36.3 (cp-01): kubeadm joins nodes "
     "of its minor and no newer; set one version in group_vars/all.yml"),
    ("workers-older-minor", in_group("cpu_nodes", herd_kubernetes_version="1.35.4"),
     f"{CPU}: herd_kubernetes_version 1.35.4 does not fit the control plane's 1.36.3 (cp-01): kubeadm joins nodes "
     "of its minor and no newer; set one version in group_vars/all.yml"),
    ("control-planes-disagree",
     both(three_control_planes(**HA), on_host("cp-03", herd_kubernetes_version="1.36.2")),
     "cp-03: herd_kubernetes_version 1.36.2 differs from cp-01's 1.36.3: every control plane runs the same "
     "version"),
    ("pool-missing-for-a-group", drop("cpu_nodes", "herd_node_pool"),
     f"{CPU}: herd_node_pool is required (set it in group_vars/all.yml or the host's group; see "
     "inventory/example/group_vars/all.yml)"),
    ("pool-not-a-label-value", on_host("gpu-03", herd_node_pool="a100 pool"),
     f"gpu-03: herd_node_pool 'a100 pool' is not a label value: use {LABEL_RULE.replace(', ', ', ', 1)}"),
    ("bad-tier", in_group("cpu_nodes", herd_node_tier="fast"),
     f"{CPU}: herd_node_tier 'fast' is not one of general, high-cpu, high-mem, gpu"),
    ("tier-typo", in_group("cpu_nodes", herd_node_tier="high_cpu"),
     f"{CPU}: herd_node_tier 'high_cpu' is not one of general, high-cpu, high-mem, gpu: did you mean high-cpu?"),
    ("gpu-tier-on-cpu-server", on_host("cpu-01", herd_node_tier="gpu"),
     "cpu-01: herd_node_tier gpu contradicts group cpu_nodes: hosts of gpu_nodes are tier gpu and only they; use "
     "another tier or move the host"),
    ("gpu-server-not-gpu-tier", on_host("gpu-02", herd_node_tier="high-mem"),
     "gpu-02: herd_node_tier high-mem contradicts group gpu_nodes: hosts of gpu_nodes are tier gpu and only they; "
     "use gpu or move the host"),
    ("required-variable-missing", drop("all", "herd_pod_subnet"),
     "every host: herd_pod_subnet is required (set it in group_vars/all.yml or the host's group; see "
     "inventory/example/group_vars/all.yml)"),
    ("required-variable-empty", in_group("all", herd_service_subnet=""),
     "every host: herd_service_subnet is empty: it is required (see inventory/example/group_vars/all.yml)"),
    # 5. Types and values of every variable the roles read
    ("ntp-servers-a-string", in_group("all", herd_ntp_servers="ntp1.lan,ntp2.lan"),
     "every host: herd_ntp_servers is the string 'ntp1.lan,ntp2.lan': give a list such as ['ntp1.lan', "
     "'ntp2.lan']"),
    ("ntp-servers-null", in_group("all", herd_ntp_servers=None),
     "every host: herd_ntp_servers is empty (null): give a list such as [] for none"),
    ("ntp-server-with-options", in_group("all", herd_ntp_servers=["ntp1.lan iburst"]),
     "every host: herd_ntp_servers[0] 'ntp1.lan iburst' is not a host name or address (one server per entry, no "
     "options)"),
    ("cert-sans-a-string", in_group("all", herd_control_plane_cert_sans="k8s.lan"),
     "every host: herd_control_plane_cert_sans is the string 'k8s.lan': give a list such as ['k8s.lan']"),
    ("cert-san-url", in_group("all", herd_control_plane_cert_sans=["https://k8s.lan"]),
     "every host: herd_control_plane_cert_sans[0] 'https://k8s.lan' is not a DNS name or IP address (no "
     "scheme, no "
     "port)"),
    ("cert-san-a-number", in_group("all", herd_control_plane_cert_sans=[10]),
     "every host: herd_control_plane_cert_sans[0] is a number (10): every entry is a string"),
    ("node-ip-a-list", on_host("gpu-01", herd_node_ip=["10.20.0.21"]),
     "gpu-01: herd_node_ip is a list (['10.20.0.21']): give a string"),
    ("kubelet-config-a-list", in_group("all", herd_kubelet_config=["maxPods=110"]),
     "every host: herd_kubelet_config is a list of key=value strings: give a mapping {key: value}"),
    ("kubelet-config-snake-case", in_group("all", herd_kubelet_config={"max_pods": 110}),
     "every host: herd_kubelet_config.max_pods is not a KubeletConfiguration field: they are camelCase (maxPods)"),
    ("kubelet-config-herds-own", in_group("all", herd_kubelet_config={"cgroupDriver": "cgroupfs"}),
     "every host: herd_kubelet_config.cgroupDriver is herd's own: remove it"),
    ("skip-phases-a-string", in_group("all", herd_kubeadm_skip_phases="addon/kube-proxy"),
     "every host: herd_kubeadm_skip_phases is the string 'addon/kube-proxy': give a list such as "
     "['addon/kube-proxy']"),
    ("skip-phase-unknown", in_group("all", herd_kubeadm_skip_phases=["addons/kube-proxy"]),
     "every host: herd_kubeadm_skip_phases[0] 'addons/kube-proxy' is not a kubeadm init phase (e.g. "
     "addon/kube-proxy): did you mean addon?"),
    ("preflight-errors-comma-string", in_group("all", herd_kubeadm_ignore_preflight_errors="Swap,NumCPU"),
     "every host: herd_kubeadm_ignore_preflight_errors is the string 'Swap,NumCPU': give a list such as ['Swap', "
     "'NumCPU']"),
    ("preflight-error-with-spaces", in_group("all", herd_kubeadm_ignore_preflight_errors=["Swap NumCPU"]),
     "every host: herd_kubeadm_ignore_preflight_errors[0] 'Swap NumCPU' is not a preflight check name (one per "
     "entry, e.g. SystemVerification)"),
    ("etcd-tag-bad", in_group("all", herd_etcd_image_tag="latest"),
     "every host: herd_etcd_image_tag 'latest' is not an etcd image tag (e.g. 3.6.8-0)"),
    ("etcd-tag-a-number", in_group("all", herd_etcd_image_tag=3.6),
     "every host: herd_etcd_image_tag is 3.6, a number (YAML read it so): quote it as a string"),
    ("cluster-name-bad", in_group("all", herd_cluster_name="My Cluster"),
     "every host: herd_cluster_name 'My Cluster' is not a DNS name (lower-case letters, digits, '-', '.')"),
    ("nfs-server-a-list", in_group("all", herd_nfs_server=["nas.lan"]),
     "every host: herd_nfs_server is a list (['nas.lan']): give a string"),
    ("containerd-version-a-number", in_group("all", containerd_version=2.2),
     "every host: containerd_version is 2.2, a number (YAML read it so): quote it as a string"),
    ("containerd-version-1x", in_group("all", containerd_version="1.7.24"),
     "every host: containerd_version '1.7.24' is not a containerd 2.x release x.y.z (Kubernetes 1.36 needs "
     "containerd 2; e.g. 2.2.9)"),
    ("role-bool-as-string", in_group("all", containerd_restrict_oom_score_adj="yes please"),
     "every host: containerd_restrict_oom_score_adj is a string ('yes please'): give true or false"),
    ("role-list-as-string", in_group("all", containerd_image_archives="/srv/images/pause.tar"),
     "every host: containerd_image_archives is the string '/srv/images/pause.tar': give a list such as "
     "['/srv/images/pause.tar']"),
    ("role-int-as-string", in_group("all", verify_kubelet_retries="many"),
     "every host: verify_kubelet_retries is a string ('many'): give a whole number"),
    ("template-of-undefined", in_group("all", herd_kubeconfig_dest="{{ site_dir }}/admin.conf"),
     "every host: herd_kubeconfig_dest cannot be read: 'site_dir' is undefined: fix the template or give a plain "
     "value"),
    # Labels and taints
    ("labels-null", on_host("gpu-04", herd_node_labels=None),
     "gpu-04: herd_node_labels is empty (null): give a mapping such as {} for none"),
    ("labels-a-list", on_host("gpu-04", herd_node_labels=["herd.dev/team=vision"]),
     "gpu-04: herd_node_labels is a list of key=value strings: give a mapping {key: value}"),
    ("labels-a-string", on_host("gpu-04", herd_node_labels="herd.dev/team=vision"),
     "gpu-04: herd_node_labels is the string 'herd.dev/team=vision': give a mapping {key: value}"),
    ("label-value-null", on_host("gpu-04", herd_node_labels={"herd.dev/team": None}),
     "gpu-04: herd_node_labels[herd.dev/team] = null: label values are strings (quote 'true' and numbers; "
     "use \"\" for an empty value)"),
    ("label-value-boolean", on_host("gpu-04", herd_node_labels={"herd.dev/spot": True}),
     "gpu-04: herd_node_labels[herd.dev/spot] = True is a boolean: label values are strings (quote 'true' and "
     "numbers; use \"\" for an empty value)"),
    ("label-value-list", on_host("gpu-04", herd_node_labels={"herd.dev/team": ["a", "b"]}),
     "gpu-04: herd_node_labels[herd.dev/team] = ['a', 'b'] is a list: label values are strings (quote 'true' and "
     "numbers; use \"\" for an empty value)"),
    ("label-value-with-space", on_host("gpu-04", herd_node_labels={"herd.dev/team": "vision team"}),
     f"gpu-04: herd_node_labels[herd.dev/team] = 'vision team' is not a label value: {LABEL_RULE}"),
    ("label-value-too-long", on_host("gpu-04", herd_node_labels={"herd.dev/team": "v" * 64}),
     f"gpu-04: herd_node_labels[herd.dev/team] = '{'v' * 64}' is not a label value: {LABEL_RULE}"),
    ("label-key-bad", on_host("gpu-04", herd_node_labels={"herd.dev/my team": "x"}),
     "gpu-04: herd_node_labels[herd.dev/my team] is not a label key: use a qualified name such as herd.dev/team "
     "(prefix a DNS subdomain, name at most 63 letters, digits, '-', '_', '.')"),
    ("label-kubernetes-io", on_host("gpu-04", herd_node_labels={"node-role.kubernetes.io/worker": "true"}),
     "gpu-04: herd_node_labels[node-role.kubernetes.io/worker] is under kubernetes.io/k8s.io, which "
     "NodeRestriction "
     "refuses to kubelets: use herd.dev/<name> (allowed there: topology.kubernetes.io/zone and region, "
     "node.kubernetes.io/*)"),
    ("label-kubelets-own", on_host("gpu-04", herd_node_labels={"kubernetes.io/hostname": "gpu-4"}),
     "gpu-04: herd_node_labels[kubernetes.io/hostname] is set by the kubelet itself: remove it"),
    ("label-taxonomy-tier", on_host("gpu-04", herd_node_labels={"herd.dev/tier": "gpu"}),
     "gpu-04: herd_node_labels[herd.dev/tier] is the taxonomy's own label: it comes from herd_node_tier, not from "
     "herd_node_labels"),
    ("label-taxonomy-location", on_host("gpu-04", herd_node_labels={"herd.dev/location": "cloud"}),
     "gpu-04: herd_node_labels[herd.dev/location] is the taxonomy's own label: herd sets it (onprem), not from "
     "herd_node_labels"),
    ("label-gpu-product-by-hand", on_host("gpu-04", herd_node_labels={"nvidia.com/gpu.product": "A100"}),
     "gpu-04: herd_node_labels[nvidia.com/gpu.product] is the taxonomy's own label: it comes from nvidia-smi "
     "on GPU "
     "servers, not from herd_node_labels"),
    ("label-other-nvidia-fact", on_host("gpu-04", herd_node_labels={"nvidia.com/cuda.driver.major": "570"}),
     "gpu-04: herd_node_labels[nvidia.com/cuda.driver.major] is a GPU fact: nvidia-smi and GPU feature "
     "discovery set "
     "nvidia.com/ labels"),
    ("taints-a-mapping", on_host("gpu-04", herd_node_taints={"key": "herd.dev/team", "effect": "NoSchedule"}),
     "gpu-04: herd_node_taints is a mapping: give a list"),
    ("taints-a-string", on_host("gpu-04", herd_node_taints="herd.dev/team=vision:NoSchedule"),
     "gpu-04: herd_node_taints is the string 'herd.dev/team=vision:NoSchedule': give a list such as "
     "['herd.dev/team=vision:NoSchedule']"),
    ("taint-entry-a-string", on_host("gpu-04", herd_node_taints=["herd.dev/team=vision:NoSchedule"]),
     "gpu-04: herd_node_taints[0] is a string ('herd.dev/team=vision:NoSchedule'): every entry is a mapping"),
    ("taint-bad-effect", on_host("gpu-04", herd_node_taints=[{"key": "herd.dev/team", "value": "v",
                                                              "effect": "NoRun"}]),
     "gpu-04: herd_node_taints[0] effect 'NoRun' is not one of NoSchedule, PreferNoSchedule, NoExecute"),
    ("taint-effect-case", on_host("gpu-04", herd_node_taints=[{"key": "herd.dev/team", "effect": "noschedule"}]),
     "gpu-04: herd_node_taints[0] effect 'noschedule' is not one of NoSchedule, PreferNoSchedule, NoExecute: "
     "did you "
     "mean NoSchedule?"),
    ("taint-without-effect", on_host("gpu-04", herd_node_taints=[{"key": "herd.dev/team", "value": "v"}]),
     "gpu-04: herd_node_taints[0] effect null is not one of NoSchedule, PreferNoSchedule, NoExecute"),
    ("taint-key-typo", on_host("gpu-04", herd_node_taints=[{"key": "herd.dev/team", "efect": "NoSchedule",
                                                            "effect": "NoSchedule"}]),
     "gpu-04: herd_node_taints[0] has key 'efect', not one of key, value, effect: did you mean effect?"),
    ("taint-without-key", on_host("gpu-04", herd_node_taints=[{"value": "v", "effect": "NoSchedule"}]),
     "gpu-04: herd_node_taints[0] key null is not a qualified name (e.g. herd.dev/team)"),
    ("taint-value-boolean", on_host("gpu-04", herd_node_taints=[{"key": "herd.dev/x", "value": True,
                                                                 "effect": "NoSchedule"}]),
     "gpu-04: herd_node_taints[0] value True is a boolean: a taint value is a string (or leave it out)"),
    ("taint-gpu-by-hand", on_host("gpu-04", herd_node_taints=[{"key": "nvidia.com/gpu", "value": "present",
                                                               "effect": "NoSchedule"}]),
     "gpu-04: herd_node_taints[0] key nvidia.com/gpu is herd's own GPU taint: GPU servers get it from nvidia-smi, "
     "remove it"),
    ("taint-kubernetes-io", on_host("gpu-04", herd_node_taints=[{"key": "node.kubernetes.io/unschedulable",
                                                                 "effect": "NoSchedule"}]),
     "gpu-04: herd_node_taints[0] key node.kubernetes.io/unschedulable is under kubernetes.io/k8s.io, Kubernetes' "
     "own taints: use herd.dev/<name>"),
    ("taint-twice",
     on_host("gpu-04", herd_node_taints=[{"key": "herd.dev/a", "value": v, "effect": "NoExecute"} for v in "ab"]),
     "gpu-04: herd_node_taints[1] repeats herd.dev/a:NoExecute: a node holds one taint per key and effect"),
    ("no-control-plane", hosts_yml(lambda d: d["all"]["children"]["control_plane"].update(hosts={})),
     "control_plane: has 0 host(s): etcd needs an odd number (1, or 3 behind herd_control_plane_vip)"),
    ("ha-without-interface", three_control_planes(**{**HA, "herd_control_plane_vip_interface": ""}),
     "all: 3 control planes need herd_control_plane_vip_interface (the NIC that carries it)"),
    ("ha-vip-in-pod-range", three_control_planes(**{**HA, "herd_control_plane_vip": "10.244.0.9",
                                                   "herd_control_plane_endpoint": "10.244.0.9:6443"}),
     "all: herd_pod_subnet 10.244.0.0/16 holds the site's own herd_control_plane_endpoint (10.244.0.9), "
     f"herd_control_plane_vip (10.244.0.9): {MOVE_RANGE}"),
    ("same-dns-name-twice",
     both(on_host("gpu-01", ansible_host="gpu.lan"), on_host("gpu-02", ansible_host="GPU.lan")),
     "gpu-02: ansible_host GPU.lan is also gpu-01's (gpu-01): each server needs its own address (is ansible_host "
     "set for a whole group?)"),
    ("nfs-server-bad-name", in_group("all", herd_nfs_server="nas_01"),
     "every host: herd_nfs_server 'nas_01' is neither an IP address nor a DNS name"),
    ("kubernetes-version-with-v", in_group("all", herd_kubernetes_version="v1.36.3"),
     "every host: herd_kubernetes_version v1.36.3 is not supported: use a full version (e.g. 1.36.3) of one of "
     "1.35, 1.36, 1.37"),
    ("pool-a-number", on_host("gpu-03", herd_node_pool=100),
     "gpu-03: herd_node_pool is 100, a number (YAML read it so): quote it as a string"),
    ("kubelet-config-a-string", in_group("all", herd_kubelet_config="maxPods: 110"),
     "every host: herd_kubelet_config is the string 'maxPods: 110': give a mapping {key: value}"),
    ("taint-value-too-long", on_host("gpu-04", herd_node_taints=[{"key": "herd.dev/a", "value": "v" * 64,
                                                                  "effect": "NoSchedule"}]),
     f"gpu-04: herd_node_taints[0] value '{'v' * 64}' is not a label value (at most 63 letters, digits, '-', '_', "
     "'.')"),
    ("unknown-variable-in-host-vars", write("host_vars/gpu-01.yml", "herd_node_lables: {herd.dev/team: nlp}\n"),
     f"gpu-01: herd_node_lables is not a herd variable: did you mean herd_node_labels? {EXAMPLE_VARS}"),
    # 6. Unknown variables
    ("labels-typo", in_group("gpu_nodes", herd_node_label={"herd.dev/team": "vision"}),
     f"{GPU}: herd_node_label is not a herd variable: did you mean herd_node_labels? {EXAMPLE_VARS}"),
    ("pool-typo", on_host("gpu-03", herd_nodepool="onprem-a100"),
     f"gpu-03: herd_nodepool is not a herd variable: did you mean herd_node_pool? {EXAMPLE_VARS}"),
    ("unknown-herd-variable", in_group("all", herd_gpu_driver="570"),
     f"every host: herd_gpu_driver is not a herd variable: no herd role reads it {EXAMPLE_VARS}"),
    ("role-variable-typo", in_group("all", containerd_verison="2.2.9"),
     "every host: containerd_verison is no role's variable: did you mean containerd_version?"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_mistake_is_one_line_naming_host_and_variable(tmp_path: Path, change: Change, message: str) -> None:
    site = tmp_path / "site"
    shutil.copytree(EXAMPLE, site)
    change(site)
    assert " | ".join(mistakes(site)) == message


def test_the_cases_are_distinct_and_many() -> None:
    assert len({c[0] for c in CASES}) == len(CASES)
    assert len({c[2] for c in CASES}) == len(CASES)
    assert len(CASES) > 60


def test_the_example_site_has_no_mistake() -> None:
    assert mistakes(EXAMPLE) == []


def test_several_mistakes_are_all_reported(tmp_path: Path) -> None:
    site = tmp_path / "site"
    shutil.copytree(EXAMPLE, site)
    in_group("cpu_nodes", herd_node_tier="fast")(site)
    on_host("gpu-02", ansible_host="10.20.0.21")(site)
    assert len(mistakes(site)) == 2


@pytest.mark.parametrize(
    ("limit", "expected"),
    [
        ("gpu-01,gpu-4",
         ["--limit: gpu-4 is no host or group of the inventory, and Ansible would run on the rest: did you mean "
          "gpu-04?"]),
        ("gpu_nodes:!gpu-02:&cpu_nodes", []),
        ("gpu-0*,~cpu-0[12],@retry.txt", []),
    ],
)  # fmt: skip
def test_a_limit_names_only_hosts_and_groups(limit: str, expected: list[str]) -> None:
    assert mistakes(EXAMPLE, limit) == expected


def test_the_inventory_spec_declares_exactly_the_herd_variables_the_playbooks_read() -> None:
    """One owner: validate_inventory's ``inventory`` argument spec lists every herd_* variable a playbook or role
    reads (and no other), so the type checks and the did-you-mean can rely on it."""
    spec = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["inventory"]
    declared = set(spec["options"])
    files = [p for p in (REPO / "playbooks").rglob("*") if p.suffix in (".yml", ".j2") and p.is_file()]
    read = {
        name
        for path in files
        if ROLE not in path.parents and not path.is_symlink()
        for name in re.findall(r"\bherd_[a-z0-9_]*[a-z0-9]\b", path.read_text())
    }
    assert read == declared


def test_the_example_site_documents_every_inventory_variable() -> None:
    spec = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())["argument_specs"]["inventory"]
    documented = (EXAMPLE / "group_vars" / "all.yml").read_text()
    assert [name for name in spec["options"] if name != "herd_taxonomy" and name not in documented] == []


# Sites that differ from the example in ways an operator may choose: none is a mistake.
ACCEPTED: list[tuple[str, Change]] = [
    ("zone-label", on_host("gpu-04", herd_node_labels={"topology.kubernetes.io/zone": "rack-1", "herd.dev/n": 8})),
    ("empty-label-value", on_host("gpu-04", herd_node_labels={"herd.dev/spare": ""})),
    ("endpoint-dns-load-balancer", in_group("all", herd_control_plane_endpoint="k8s.lan:443")),
    ("dns-names-for-hosts",
     both(on_host("gpu-01", ansible_host="gpu-01.lan"), on_host("gpu-02", ansible_host="gpu-02.lan"))),
    ("node-ip-per-host",
     both(on_host("gpu-01", herd_node_ip="10.30.0.21"), on_host("gpu-02", herd_node_ip="10.30.0.22"))),
    ("no-cpu-servers", both(hosts_yml(lambda d: d["all"]["children"].pop("cpu_nodes")),
                            remove("group_vars/cpu_nodes.yml"))),
    ("no-cpu-servers-yet", hosts_yml(lambda d: d["all"]["children"].update(cpu_nodes=None))),
    ("an-organising-group",
     both(hosts_yml(lambda d: d["all"]["children"].update(rack1={"hosts": {"gpu-01": None}})),
                                 write("group_vars/rack1.yml", "herd_ntp_servers: [ntp.rack1.lan]\n"))),
    ("group-vars-directory", both(remove("group_vars/gpu_nodes.yml"),
                                  write("group_vars/gpu_nodes/main.yml", "herd_node_pool: onprem-gpu\n"
                                        "herd_node_tier: gpu\n"))),
    ("three-control-planes", three_control_planes(**HA)),
    ("optional-settings", in_group("all", herd_kubeadm_skip_phases=["addon/kube-proxy"],
                                   herd_etcd_image_tag="3.6.8-0",
                                   herd_kubeadm_ignore_preflight_errors=["SystemVerification"],
                                   herd_kubelet_config={"maxPods": 110}, herd_nfs_server="nas.lan",
                                   herd_control_plane_cert_sans=["k8s.lan", "*.k8s.lan", "10.20.0.9"],
                                   containerd_version="2.1.5", herd_ntp_servers=["10.20.0.1", "ntp.lan"])),
    ("one-older-patch-on-workers", in_group("cpu_nodes", herd_kubernetes_version="1.36.1")),
    ("a-taint-without-value",
     on_host("gpu-04", herd_node_taints=[{"key": "herd.dev/drain", "effect": "NoExecute"}])),
    ("kubeconfig-from-a-template",
     in_group("all", herd_kubeconfig_dest="{{ inventory_dir }}/artifacts/admin.conf")),
]  # fmt: skip


@pytest.mark.parametrize("change", [c[1] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_what_an_operator_may_choose_is_accepted(tmp_path: Path, change: Change) -> None:
    site = tmp_path / "site"
    shutil.copytree(EXAMPLE, site)
    change(site)
    assert mistakes(site) == []
