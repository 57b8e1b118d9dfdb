"""The whole-site inventory check behind validate_inventory: one line per mistake, naming the host (or group, or
file) and the variable, and saying what would be right.

It reads only what Ansible already parsed (hostvars, groups) and the inventory's own YAML files, so it runs on the
controller and connects to no host. Types come from the roles' argument specs (validate_inventory's ``inventory``
entry point declares every herd_* variable; each role's ``main`` entry point its own options), so there is no
second list of variables to keep in step.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from jinja2 import Undefined

# Kubernetes' own syntax (apimachinery validation): DNS-1123 subdomains and labels, label values, qualified names.
_DNS_LABEL = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"
DNS_SUBDOMAIN = re.compile(rf"^{_DNS_LABEL}(\.{_DNS_LABEL})*$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
QUALIFIED_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
HOST_NAME = re.compile(
    r"^[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?)*$"
)
VERSION = re.compile(r"^\d+\.\d+\.\d+$")
CONTAINERD_VERSION = re.compile(r"^2\.\d+\.\d+$")
ETCD_TAG = re.compile(r"^v?\d+\.\d+\.\d+(-\d+)?$")
INTERFACE = re.compile(r"^[A-Za-z0-9_.:@-]{1,15}$")
CAMEL_CASE = re.compile(r"^[a-z][A-Za-z0-9]*$")
PREFLIGHT_CHECK = re.compile(r"^([A-Za-z][A-Za-z0-9]*)(-[A-Za-z0-9.-]+)?$")

# The labels NodeRestriction lets a kubelet set under kubernetes.io / k8s.io (and those the kubelet sets itself).
NODE_RESTRICTION_ALLOWED = (
    "topology.kubernetes.io/region",
    "topology.kubernetes.io/zone",
    "node.kubernetes.io/instance-type",
)
NODE_RESTRICTION_ALLOWED_PREFIXES = ("kubelet.kubernetes.io/", "node.kubernetes.io/")
KUBELET_OWN_LABELS = ("kubernetes.io/hostname", "kubernetes.io/arch", "kubernetes.io/os")
# kubeadm init's phases (kubeadm init --help); a sub-phase is <phase>/<name>.
KUBEADM_INIT_PHASES = (
    "preflight",
    "certs",
    "kubeconfig",
    "etcd",
    "control-plane",
    "kubelet-start",
    "upload-config",
    "upload-certs",
    "mark-control-plane",
    "bootstrap-token",
    "kubelet-finalize",
    "addon",
    "show-join-command",
)
# KubeletConfiguration fields herd sets itself (control_plane's vars).
KUBELET_OWN_FIELDS = ("apiVersion", "kind", "cgroupDriver", "containerRuntimeEndpoint")
# kube-apiserver refuses a larger IPv4 service range (--service-cluster-ip-range mask must be >= 12), and the
# controller manager gives each node a /24 of the pod range (--node-cidr-mask-size).
SERVICE_MIN_PREFIX = 12
NODE_CIDR_PREFIX = 24
API_SERVER_PORT = 6443  # control_plane's InitConfiguration bindPort; kube-vip forwards the same port.
GROUP_KEYS = ("hosts", "vars", "children")
TAINT_KEYS = ("key", "value", "effect")
_YAML_SUFFIXES = (".yml", ".yaml", ".json", "")
_MISSING = object()


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {"herd_inventory_mistakes": herd_inventory_mistakes}


def herd_inventory_mistakes(  # noqa: PLR0917 (a Jinja filter gets its arguments by position)
    hostvars: Mapping[str, Any],
    groups: Mapping[str, Iterable[str]],
    sources: Iterable[str],
    limit: str | None,
    taxonomy: Mapping[str, Any],
    roles_dir: str,
    settings: Mapping[str, Any],
) -> list[str]:
    """Every mistake in the site, one line each (empty: the inventory is good).

    Args:
        hostvars: Ansible's hostvars (or a plain mapping of host to variables).
        groups: Ansible's groups (group name to host names).
        sources: the inventory sources (ansible_inventory_sources).
        limit: the run's --limit (ansible_limit), if any.
        taxonomy: playbooks/vars/taxonomy.yml.
        roles_dir: the directory holding herd's roles (their meta/argument_specs.yml).
        settings: validate_inventory's own variables (supported minors, node groups, cluster-wide variables ...).
    """
    groups = {name: list(members) for name, members in groups.items()}
    specs = Specs(Path(roles_dir))
    site = Site(hostvars, groups, specs)
    check = Checker(site, specs, taxonomy, settings)
    for source in sources:
        check.inventory_files(str(source))
    check.limit(str(limit or ""))
    if not site.hosts:
        check.at("inventory", "", "has no hosts: it parsed, but defines none (see inventory/example/hosts.yml)")
    else:
        check.run()
    return check.lines()


class Unreadable(Exception):
    """A variable whose template cannot be rendered (Ansible hands the filter a marker instead of raising)."""


def plain(value: Any) -> Any:
    """Ansible's tagged and lazy containers as plain Python (str, int, float, bool, None, list, dict)."""
    if isinstance(value, Undefined):
        raise Unreadable(value._undefined_message)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        return {plain(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


def type_name(value: Any) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a mapping",
    }.get(type(value), type(value).__name__)


def show(value: Any) -> str:
    return "null" if value is None else repr(value)


def did_you_mean(name: str, choices: Iterable[str], cutoff: float = 0.75) -> str:
    close = difflib.get_close_matches(name, sorted(set(choices)), n=1, cutoff=cutoff)
    return f"did you mean {close[0]}?" if close else ""


def address(text: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(str(text))
    except ValueError:
        return None


def looks_numeric(text: str) -> bool:
    return bool(re.fullmatch(r"[\d.]+", text))


class Specs:
    """The variables herd's roles read, with their types: one owner, the roles' argument specs."""

    def __init__(self, roles_dir: Path) -> None:
        self.inventory: dict[str, dict[str, Any]] = {}
        self.roles: dict[str, dict[str, Any]] = {}
        self.role_names: list[str] = []
        for spec_file in sorted(roles_dir.glob("*/meta/argument_specs.yml")):
            role = spec_file.parent.parent.name
            entry_points = (yaml.safe_load(spec_file.read_text()) or {}).get("argument_specs", {})
            self.role_names.append(role)
            for entry, spec in entry_points.items():
                options = spec.get("options") or {}
                if role == "validate_inventory" and entry == "inventory":
                    self.inventory.update(options)
                else:
                    for name, option in options.items():
                        self.roles.setdefault(name, option)

    def option(self, name: str) -> dict[str, Any] | None:
        return self.inventory.get(name) or self.roles.get(name)


class Site:
    """Each host's variables as plain data, and the mistakes met while reading them."""

    def __init__(self, hostvars: Mapping[str, Any], groups: dict[str, list[str]], specs: Specs) -> None:
        self.groups = groups
        self.hosts: list[str] = list(groups.get("all", []))
        self.vars: dict[str, dict[str, Any]] = {}
        self.unreadable: list[tuple[str, str, str]] = []
        for host in self.hosts:
            raw = hostvars[host]
            values: dict[str, Any] = {}
            for name in list(raw.keys()):
                if not self._ours(name, specs):
                    continue
                try:
                    values[name] = plain(raw[name])
                except Exception as e:  # an undefined variable in a template, a filter error, ...
                    reason = " ".join(str(e).split()).split(". ")[0]
                    self.unreadable.append((host, name, reason))
            values["ansible_host"] = values.get("ansible_host", _MISSING)
            self.vars[host] = values

    @staticmethod
    def _ours(name: str, specs: Specs) -> bool:
        return (
            name.startswith("herd_")
            or name == "ansible_host"
            or name in specs.roles
            or any(name.startswith(f"{role}_") for role in specs.role_names)
        )

    def get(self, host: str, name: str, default: Any = None) -> Any:
        value = self.vars[host].get(name, default)
        return default if value is _MISSING else value

    def has(self, host: str, name: str) -> bool:
        return self.vars[host].get(name, _MISSING) is not _MISSING

    def group_of(self, host: str, node_groups: list[str]) -> str | None:
        mine = [g for g in node_groups if host in self.groups.get(g, [])]
        return mine[0] if len(mine) == 1 else None


class Checker:
    def __init__(self, site: Site, specs: Specs, taxonomy: Mapping[str, Any], settings: Mapping[str, Any]) -> None:
        self.site = site
        self.specs = specs
        self.taxonomy = plain(taxonomy)
        self.settings = plain(settings)
        self.node_groups: list[str] = self.settings["validate_inventory_node_groups"]
        self.by_text: dict[str, list[str]] = {}  # message without its subject -> subjects, in order

    # ---- reporting: the same mistake on several hosts is one line naming them (or their group) ----
    def host(self, host: str, name: str, problem: str) -> None:
        self.by_text.setdefault(joined(name, problem), []).append(host)

    def at(self, subject: str, name: str, problem: str) -> None:
        self.by_text.setdefault(joined(name, problem), []).append(f"\0{subject}")

    def lines(self) -> list[str]:
        out = []
        for text, subjects in self.by_text.items():
            hosts = [s for s in dict.fromkeys(subjects) if not s.startswith("\0")]
            others = [s[1:] for s in dict.fromkeys(subjects) if s.startswith("\0")]
            out.extend(f"{subject}: {text}" for subject in others)
            if hosts:
                out.append(f"{self._name_hosts(hosts)}: {text}")
        return out

    def _name_hosts(self, hosts: list[str]) -> str:
        if len(hosts) > 1:
            if set(hosts) == set(self.site.hosts):
                return "every host"
            for group, members in self.site.groups.items():
                if group not in ("all", "ungrouped") and set(members) == set(hosts):
                    return f"group {group} ({', '.join(hosts)})"
        return ", ".join(hosts)

    # ---- the checks ----
    def run(self) -> None:
        if self.by_text:
            return  # the files are misread: what Ansible made of them would only echo these mistakes
        for host, name, reason in self.site.unreadable:
            self.host(host, name, f"cannot be read: {reason}: fix the template or give a plain value")
        self.groups_and_names()
        for host in self.site.hosts:
            self.variables(host)
        self.cluster()
        self.addresses()
        self.versions()
        for host in self.site.hosts:
            self.identity(host)

    def groups_and_names(self) -> None:
        cps = self.site.groups.get("control_plane", [])
        if len(cps) % 2 == 0:
            self.at(
                "control_plane",
                "",
                f"has {len(cps)} host(s): etcd needs an odd number (1, or 3 behind herd_control_plane_vip)",
            )
        known = set(self.node_groups)
        for host in self.site.hosts:
            mine = [g for g in self.node_groups if host in self.site.groups.get(g, [])]
            if len(mine) > 1:
                self.host(
                    host,
                    "",
                    f"is in groups {', '.join(mine)}: put it in exactly one of {', '.join(self.node_groups)}",
                )
            elif not mine:
                others = [
                    g for g in self.site.groups if g not in ("all", "ungrouped") and host in self.site.groups[g]
                ]
                hints = [h for h in (did_you_mean(g, known) for g in others) if h]
                where = f" (its groups: {', '.join(others)})" if others else ""
                self.host(
                    host,
                    "",
                    f"is in none of {', '.join(self.node_groups)}{where}: put it in exactly one"
                    + (f"; {hints[0]}" if hints else ""),
                )
        names: dict[str, str] = {}
        for host in self.site.hosts:
            node = host.lower()
            if not DNS_SUBDOMAIN.match(node) or len(node) > 63:
                self.host(
                    host,
                    "",
                    "cannot be a Node name (the inventory name becomes it): use at most 63 "
                    "letters, digits, '-' and '.', starting and ending with a letter or digit (no '_'); "
                    "keep the address in ansible_host",
                )
            elif node in names:
                self.host(host, "", f"becomes Node {node}, as {names[node]} does: rename one")
            names.setdefault(node, host)

    def variables(self, host: str) -> None:
        """Types of every variable the roles read, optional ones included; unknown herd_* variables."""
        for name in self.site.vars[host]:
            if not self.site.has(host, name):
                continue
            value = self.site.get(host, name)
            option = {"type": "str"} if name == "ansible_host" else self.specs.option(name)
            if option is None:
                if name.startswith("herd_"):
                    hint = did_you_mean(name, self.specs.inventory) or "no herd role reads it"
                    self.host(
                        host,
                        name,
                        f"is not a herd variable: {hint} (the variables are in "
                        "inventory/example/group_vars/all.yml)",
                    )
                else:
                    hint = did_you_mean(name, self.specs.roles, cutoff=0.85)
                    if hint:
                        self.host(host, name, f"is no role's variable: {hint}")
                continue
            if name == "herd_taxonomy":
                continue
            problem = type_problem(value, option)
            if problem:
                self.host(host, name, problem)
        if self.site.group_of(host, self.node_groups) is None:
            return  # its group's variables are missing because the group is: that is the mistake reported
        for name, option in self.specs.inventory.items():
            if not option.get("required"):
                continue
            if not self.site.has(host, name):
                self.host(
                    host,
                    name,
                    "is required (set it in group_vars/all.yml or the host's group; see "
                    "inventory/example/group_vars/all.yml)",
                )
            elif self.site.get(host, name) == "":
                self.host(host, name, "is empty: it is required (see inventory/example/group_vars/all.yml)")

    def text(self, host: str, name: str) -> str | None:
        """A string variable's value if it is a non-empty string (a wrong type is reported already), else None."""
        value = self.site.get(host, name)
        return value if isinstance(value, str) and value else None

    def cluster(self) -> None:
        """Cluster-wide variables: one value for every host, then the site's networks as a whole."""
        hosts = self.site.hosts
        first = (self.site.groups.get("control_plane") or hosts)[0]
        for name in self.settings["validate_inventory_cluster_wide"]:
            reference = self.site.get(first, name)
            differ = [h for h in hosts if self.site.get(h, name) != reference]
            if differ:
                self.at(
                    self._name_hosts(differ),
                    name,
                    f"is {show(self.site.get(differ[0], name))} here but "
                    f"{show(reference)} on {first}: it describes the whole cluster, set it once in "
                    "group_vars/all.yml",
                )
        pod = self.network(first, "herd_pod_subnet", "10.244.0.0/16")
        svc = self.network(first, "herd_service_subnet", "10.96.0.0/12")
        if svc is not None and svc.prefixlen < SERVICE_MIN_PREFIX:
            self.at(
                "all",
                "herd_service_subnet",
                f"{svc} is too large: kube-apiserver takes at most a /{SERVICE_MIN_PREFIX} (e.g. 10.96.0.0/12)",
            )
        nodes = len(hosts)
        if pod is not None:
            if pod.prefixlen > NODE_CIDR_PREFIX:
                self.at(
                    "all",
                    "herd_pod_subnet",
                    f"{pod} is too small: each node gets a /{NODE_CIDR_PREFIX} "
                    "of it, use a /16 (e.g. 10.244.0.0/16)",
                )
            elif 2 ** (NODE_CIDR_PREFIX - pod.prefixlen) < nodes:
                self.at(
                    "all",
                    "herd_pod_subnet",
                    f"{pod} holds {2 ** (NODE_CIDR_PREFIX - pod.prefixlen)} node "
                    f"ranges (/{NODE_CIDR_PREFIX} each) for {nodes} hosts: use a larger range such as a /16",
                )
        if pod is not None and svc is not None and pod.overlaps(svc):
            self.at(
                "all",
                "herd_pod_subnet",
                f"{pod} overlaps herd_service_subnet {svc}: pick ranges that "
                "share no address (e.g. 10.244.0.0/16 and 10.96.0.0/12)",
            )
        self.endpoint(first, pod, svc)
        self.ranges_hold_no_site_address(first, pod, svc)

    def network(self, host: str, name: str, example: str) -> ipaddress.IPv4Network | None:
        text = self.text(host, name)
        if text is None:
            return None
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            self.at("all", name, f"{text!r} is not an IPv4 CIDR: use the form {example}")
            return None
        if net.version != 4 or "/" not in text:
            self.at("all", name, f"{text!r} is not an IPv4 CIDR: use the form {example}")
            return None
        if str(net.network_address) != text.split("/")[0]:
            self.at("all", name, f"{text} has host bits set: use the network address {net}")
        elif net.is_loopback or net.is_link_local or net.is_multicast or net.is_reserved or net.is_unspecified:
            self.at(
                "all",
                name,
                f"{text} is a reserved range (loopback, link-local, multicast): use a private "
                f"range such as {example}",
            )
        return net  # type: ignore[return-value]

    def endpoint(self, first: str, pod: Any, svc: Any) -> None:
        text = self.text(first, "herd_control_plane_endpoint")
        cps = self.site.groups.get("control_plane", [])
        vip_text = self.text(first, "herd_control_plane_vip")
        vip = address(vip_text) if vip_text else None
        if vip_text and (vip is None or vip.version != 4):
            self.at(
                "all",
                "herd_control_plane_vip",
                f"{vip_text!r} is not an IPv4 address: give the virtual IP alone, e.g. 10.20.0.9",
            )
        members = {h: self.own_addresses(h) for h in self.site.hosts}
        if vip is not None:
            for h, mine in members.items():
                if vip in mine:
                    self.at(
                        "all",
                        "herd_control_plane_vip",
                        f"{vip} is {h}'s own address: the virtual IP must "
                        "be a free address on the control planes' network",
                    )
        if text is None:
            return
        host, sep, port = text.rpartition(":")
        if not sep or not host or not port.isdigit():
            self.at(
                "all",
                "herd_control_plane_endpoint",
                f"{text} must be host:port (a DNS name or the virtual IP, e.g. 10.20.0.10:6443)",
            )
            return
        if not 1 <= int(port) <= 65535:
            self.at("all", "herd_control_plane_endpoint", f"{text}: port {port} is not a TCP port: use 6443")
            return
        ip = address(host)
        if ip is None and (looks_numeric(host) or not HOST_NAME.match(host)):
            self.at(
                "all",
                "herd_control_plane_endpoint",
                f"{text}: {host} is neither an IPv4 address nor a DNS name (each octet 0-255)",
            )
            return
        if len(cps) > 1 and len(cps) % 2:
            problems = []
            if not vip_text:
                problems.append(
                    "herd_control_plane_vip (the virtual IP, also the host part of "
                    f"herd_control_plane_endpoint, now {text})"
                )
            if not self.text(first, "herd_control_plane_vip_interface"):
                problems.append("herd_control_plane_vip_interface (the NIC that carries it)")
            if problems:
                self.at("all", "", f"{len(cps)} control planes need {' and '.join(problems)}")
            elif vip is not None and host != vip_text:
                self.at(
                    "all",
                    "herd_control_plane_endpoint",
                    f"{text} does not point at herd_control_plane_vip "
                    f"{vip_text}: with {len(cps)} control planes use {vip_text}:{API_SERVER_PORT}",
                )
        iface = self.text(first, "herd_control_plane_vip_interface")
        if iface and not INTERFACE.match(iface):
            self.at(
                "all", "herd_control_plane_vip_interface", f"{iface!r} is not a network interface name (e.g. eno1)"
            )
        if ip is None or any(net is not None and ip in net for net in (pod, svc)):
            return  # a range holding the endpoint is reported with the site's other addresses
        owners = [h for h, mine in members.items() if ip in mine]
        if owners and owners[0] not in cps:
            self.at(
                "all",
                "herd_control_plane_endpoint",
                f"{text} is {owners[0]}'s address, a worker: point it "
                f"at the control plane ({cps[0] if cps else 'control_plane'}) or the virtual IP",
            )
        if (owners or ip == vip) and int(port) != API_SERVER_PORT:
            self.at(
                "all",
                "herd_control_plane_endpoint",
                f"{text}: the API server listens on "
                f"{API_SERVER_PORT} and nothing forwards {port}: use {host}:{API_SERVER_PORT}",
            )
        if len(cps) == 1 and not owners and ip != vip:
            self.at(
                "all",
                "herd_control_plane_endpoint",
                f"{text} is no host's address: with one control plane "
                f"use its address ({cps[0]}: {self.first_address(cps[0])}:{API_SERVER_PORT})",
            )

    def ranges_hold_no_site_address(self, first: str, pod: Any, svc: Any) -> None:
        """The pod and service ranges against every address the site has: servers, endpoint, VIP, NAS."""
        site: list[tuple[str, Any]] = []
        for host in self.site.hosts:
            site.extend((f"{host} ({ip})", ip) for ip in sorted(self.own_addresses(host), key=str))
        for name in ("herd_control_plane_endpoint", "herd_control_plane_vip", "herd_nfs_server"):
            text = self.text(first, name) or ""
            ip = address(text.rpartition(":")[0] if name == "herd_control_plane_endpoint" else text)
            if ip is not None:
                site.append((f"{name} ({ip})", ip))
        for range_name, net in (("herd_pod_subnet", pod), ("herd_service_subnet", svc)):
            inside = list(
                dict.fromkeys(what for what, ip in site if net is not None and ip.version == 4 and ip in net)
            )
            if inside:
                shown = ", ".join(inside[:3]) + (f" and {len(inside) - 3} more" if len(inside) > 3 else "")
                self.at(
                    "all",
                    range_name,
                    f"{net} holds the site's own {shown}: the cluster's ranges must overlap "
                    "no site address; move the range (e.g. 10.244.0.0/16, 10.96.0.0/12)",
                )

    def own_addresses(self, host: str) -> set[Any]:
        return {
            ip
            for name in self.settings["validate_inventory_ip_variables"]
            if (ip := address(self.text(host, name))) is not None
        }

    def first_address(self, host: str) -> str:
        for name in self.settings["validate_inventory_ip_variables"]:
            if self.text(host, name):
                return self.site.get(host, name)
        return host

    def addresses(self) -> None:
        """ansible_host and herd_node_ip: well-formed, one host each."""
        for name in self.settings["validate_inventory_ip_variables"]:
            seen: dict[str, str] = {}
            for host in self.site.hosts:
                text = self.text(host, name)
                if text is None:
                    continue
                ip = address(text)
                if ip is None:
                    if "/" in text and address(text.split("/")[0]):
                        self.host(
                            host,
                            name,
                            f"{text} has a prefix length: give the address alone ({text.split('/')[0]})",
                        )
                        continue
                    if ":" in text and address(text.rsplit(":", 1)[0]):
                        self.host(
                            host, name, f"{text} has a port: give the address alone and the port in ansible_port"
                        )
                        continue
                    if name != "ansible_host" or looks_numeric(text) or not HOST_NAME.match(text):
                        self.host(
                            host,
                            name,
                            f"{text!r} is not an IP address"
                            + (" or a DNS name" if name == "ansible_host" else "")
                            + " (four octets 0-255, e.g. 10.20.0.21)",
                        )
                        continue
                elif ip.is_unspecified or ip.is_loopback or ip.is_multicast or ip.is_link_local:
                    self.host(
                        host,
                        name,
                        f"{ip} is not a server's address (loopback, unspecified, multicast or "
                        "link-local): give the address the other servers reach it on",
                    )
                    continue

                key = str(ip) if ip is not None else text.lower()
                if key in seen:
                    other = seen[key]
                    role = (
                        "the control plane's"
                        if other in self.site.groups.get("control_plane", [])
                        else f"{other}'s"
                    )
                    self.host(
                        host,
                        name,
                        f"{text} is also {role} ({other}): each server needs its own address "
                        f"(is {name} set for a whole group?)",
                    )
                else:
                    seen[key] = host
        for host in self.site.hosts:
            server = self.text(host, "herd_nfs_server")
            if server is None:
                continue
            if ":" in server or "/" in server:
                self.host(
                    host,
                    "herd_nfs_server",
                    f"{server!r} must be the NAS's host name or address alone (the "
                    "export path is the Pulumi stack's, not the inventory's)",
                )
            elif address(server) is None and (looks_numeric(server) or not HOST_NAME.match(server)):
                self.host(host, "herd_nfs_server", f"{server!r} is neither an IP address nor a DNS name")

    def versions(self) -> None:
        """herd_kubernetes_version on every host: supported, control planes alike, workers of their minor."""
        supported = self.settings["validate_inventory_supported_minors"]
        good: dict[str, tuple[int, ...]] = {}
        for host in self.site.hosts:
            text = self.text(host, "herd_kubernetes_version")
            if text is None:
                continue
            minor = ".".join(text.lstrip("v").split(".")[:2])
            if not VERSION.match(text) or minor not in supported:
                self.host(
                    host,
                    "herd_kubernetes_version",
                    f"{text} is not supported: use a full version (e.g. 1.36.3) of one of {', '.join(supported)}",
                )
                continue
            good[host] = tuple(int(p) for p in text.split("."))
        cps = [h for h in self.site.groups.get("control_plane", []) if h in good]
        if not cps:
            return
        ref = good[cps[0]]
        shown = ".".join(map(str, ref))
        for host, version in good.items():
            text = ".".join(map(str, version))
            if host in cps and version != ref:
                self.host(
                    host,
                    "herd_kubernetes_version",
                    f"{text} differs from {cps[0]}'s {shown}: every control plane runs the same version",
                )
            elif host not in cps and (version[:2] != ref[:2] or version > ref):
                self.host(
                    host,
                    "herd_kubernetes_version",
                    f"{text} does not fit the control plane's {shown} "
                    f"({cps[0]}): kubeadm joins nodes of its minor and no newer; set one version in "
                    "group_vars/all.yml",
                )

    def identity(self, host: str) -> None:
        """Pool, tier, labels and taints against the taxonomy and the host's group."""
        tiers = self.taxonomy["labels"]["tier"]["values"]
        group = self.site.group_of(host, self.node_groups)
        pool = self.text(host, "herd_node_pool")
        if pool is not None and (not LABEL_VALUE.match(pool)):
            self.host(
                host,
                "herd_node_pool",
                f"{pool!r} is not a label value: use at most 63 letters, digits, "
                "'-', '_', '.', starting and ending with a letter or digit",
            )
        tier = self.text(host, "herd_node_tier")
        if tier is not None:
            if tier not in tiers:
                hint = did_you_mean(tier, tiers, cutoff=0.6)
                self.host(
                    host,
                    "herd_node_tier",
                    f"{tier!r} is not one of {', '.join(tiers)}" + (f": {hint}" if hint else ""),
                )
            elif group is not None and (tier == "gpu") != (group == "gpu_nodes"):
                right = "gpu" if group == "gpu_nodes" else "another tier"
                self.host(
                    host,
                    "herd_node_tier",
                    f"{tier} contradicts group {group}: hosts of gpu_nodes are tier "
                    f"gpu and only they; use {right} or move the host",
                )
        labels = self.site.get(host, "herd_node_labels")
        if isinstance(labels, dict):
            for key, value in labels.items():
                self.label(host, key, value)
        taints = self.site.get(host, "herd_node_taints")
        if isinstance(taints, list):
            seen: set[tuple[str, str]] = set()
            for index, taint in enumerate(taints):
                self.taint(host, index, taint, seen, group)
        self.kubernetes_settings(host)

    def taxonomy_keys(self) -> dict[str, str]:
        sources = {
            "location": "herd sets it (onprem)",
            "pool": "it comes from herd_node_pool",
            "tier": "it comes from herd_node_tier",
        }
        return {
            spec["key"]: sources.get(name, "it comes from nvidia-smi on GPU servers")
            for name, spec in self.taxonomy["labels"].items()
        }

    def label(self, host: str, key: Any, value: Any) -> None:
        where = f"herd_node_labels[{key}]"
        if not isinstance(key, str) or not qualified(key):
            self.host(
                host,
                where,
                "is not a label key: use a qualified name such as herd.dev/team (prefix a DNS "
                "subdomain, name at most 63 letters, digits, '-', '_', '.')",
            )
            return
        own = self.taxonomy_keys()
        prefix = key.split("/")[0] if "/" in key else ""
        if key in own:
            self.host(host, where, f"is the taxonomy's own label: {own[key]}, not from herd_node_labels")
        elif prefix == "nvidia.com":
            self.host(host, where, "is a GPU fact: nvidia-smi and GPU feature discovery set nvidia.com/ labels")
        elif key in KUBELET_OWN_LABELS:
            self.host(host, where, "is set by the kubelet itself: remove it")
        elif re.search(r"(^|\.)(kubernetes\.io|k8s\.io)$", prefix) and not (
            key in NODE_RESTRICTION_ALLOWED or key.startswith(NODE_RESTRICTION_ALLOWED_PREFIXES)
        ):
            self.host(
                host,
                where,
                "is under kubernetes.io/k8s.io, which NodeRestriction refuses to kubelets: use "
                f"{self.taxonomy['prefix']}/<name> (allowed there: topology.kubernetes.io/zone and region, "
                "node.kubernetes.io/*)",
            )
        if value is None or isinstance(value, bool | list | dict | float):
            kind = "" if value is None else f" is {type_name(value)}"
            self.host(
                host,
                where,
                f"= {show(value)}{kind}: label values are strings (quote 'true' and numbers; use \"\" for an "
                "empty value)",
            )
        elif not LABEL_VALUE.match(str(value)):
            self.host(
                host,
                where,
                f"= {value!r} is not a label value: at most 63 letters, digits, '-', '_', '.', "
                "starting and ending with a letter or digit",
            )

    def taint(self, host: str, index: int, taint: Any, seen: set[tuple[str, str]], group: str | None) -> None:
        where = f"herd_node_taints[{index}]"
        effects = self.settings["validate_inventory_taint_effects"]
        if not isinstance(taint, dict):
            return  # the list's type check has said so
        for extra in taint.keys() - set(TAINT_KEYS):
            hint = did_you_mean(str(extra), TAINT_KEYS, cutoff=0.6)
            self.host(
                host, where, f"has key {extra!r}, not one of key, value, effect" + (f": {hint}" if hint else "")
            )
        key, value, effect = taint.get("key"), taint.get("value", ""), taint.get("effect")
        if not isinstance(key, str) or not qualified(key):
            self.host(host, where, f"key {show(key)} is not a qualified name (e.g. herd.dev/team)")
        elif key == self.taxonomy["taints"]["gpu"]["key"]:
            self.host(
                host, where, f"key {key} is herd's own GPU taint: GPU servers get it from nvidia-smi, remove it"
            )
        elif re.search(r"(^|\.)(kubernetes\.io|k8s\.io)$", key.split("/")[0] if "/" in key else ""):
            self.host(
                host,
                where,
                f"key {key} is under kubernetes.io/k8s.io, Kubernetes' own taints: use "
                f"{self.taxonomy['prefix']}/<name>",
            )
        if value is None or not isinstance(value, str | int) or isinstance(value, bool):
            self.host(
                host,
                where,
                f"value {show(value)} is {type_name(value)}: a taint value is a string (or leave it out)",
            )
        elif not LABEL_VALUE.match(str(value)):
            self.host(
                host, where, f"value {value!r} is not a label value (at most 63 letters, digits, '-', '_', '.')"
            )
        if effect not in effects:
            hint = did_you_mean(str(effect), effects, cutoff=0.6)
            self.host(
                host,
                where,
                f"effect {show(effect)} is not one of {', '.join(effects)}" + (f": {hint}" if hint else ""),
            )
        if isinstance(key, str) and isinstance(effect, str):
            if (key, effect) in seen:
                self.host(host, where, f"repeats {key}:{effect}: a node holds one taint per key and effect")
            seen.add((key, effect))

    def kubernetes_settings(self, host: str) -> None:
        """Optional settings whose values have a syntax of their own."""
        for i, server in enumerate(self.list_of_str(host, "herd_ntp_servers")):
            if not (address(server) or (HOST_NAME.match(server) and not looks_numeric(server))):
                self.host(
                    host,
                    f"herd_ntp_servers[{i}]",
                    f"{server!r} is not a host name or address (one server per entry, no options)",
                )
        for i, san in enumerate(self.list_of_str(host, "herd_control_plane_cert_sans")):
            name = san[2:] if san.startswith("*.") else san
            if not (address(san) or (HOST_NAME.match(name) and not looks_numeric(name))):
                self.host(
                    host,
                    f"herd_control_plane_cert_sans[{i}]",
                    f"{san!r} is not a DNS name or IP address (no scheme, no port)",
                )
        for i, phase in enumerate(self.list_of_str(host, "herd_kubeadm_skip_phases")):
            top = phase.split("/")[0]
            if top not in KUBEADM_INIT_PHASES or not re.fullmatch(r"[a-z-]+(/[a-z0-9-]+)?", phase):
                hint = did_you_mean(top, KUBEADM_INIT_PHASES, cutoff=0.6)
                self.host(
                    host,
                    f"herd_kubeadm_skip_phases[{i}]",
                    f"{phase!r} is not a kubeadm init phase (e.g. "
                    "addon/kube-proxy)" + (f": {hint}" if hint else ""),
                )
        for i, check in enumerate(self.list_of_str(host, "herd_kubeadm_ignore_preflight_errors")):
            if not PREFLIGHT_CHECK.match(check):
                self.host(
                    host,
                    f"herd_kubeadm_ignore_preflight_errors[{i}]",
                    f"{check!r} is not a preflight check name (one per entry, e.g. SystemVerification)",
                )
        tag = self.text(host, "herd_etcd_image_tag")
        if tag and not ETCD_TAG.match(tag):
            self.host(host, "herd_etcd_image_tag", f"{tag!r} is not an etcd image tag (e.g. 3.6.8-0)")
        kubelet = self.site.get(host, "herd_kubelet_config")
        if isinstance(kubelet, dict):
            for field in kubelet:
                if field in KUBELET_OWN_FIELDS:
                    self.host(host, f"herd_kubelet_config.{field}", "is herd's own: remove it")
                elif not isinstance(field, str) or not CAMEL_CASE.match(field):
                    hint = re.sub(r"_([a-z])", lambda m: m.group(1).upper(), str(field))
                    self.host(
                        host,
                        f"herd_kubelet_config.{field}",
                        f"is not a KubeletConfiguration field: they are camelCase ({hint})",
                    )
        name = self.text(host, "herd_cluster_name")
        if name and not DNS_SUBDOMAIN.match(name):
            self.host(
                host, "herd_cluster_name", f"{name!r} is not a DNS name (lower-case letters, digits, '-', '.')"
            )
        version = self.site.get(host, "containerd_version")
        if isinstance(version, str) and not CONTAINERD_VERSION.match(version):
            self.host(
                host,
                "containerd_version",
                f"{version!r} is not a containerd 2.x release x.y.z (Kubernetes "
                "1.36 needs containerd 2; e.g. 2.2.9)",
            )

    def list_of_str(self, host: str, name: str) -> list[str]:
        value = self.site.get(host, name)
        return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []

    def limit(self, limit: str) -> None:
        """A --limit entry that names no host or group: Ansible only warns and runs on the rest."""
        for pattern in re.split(r"[,:]", limit):
            name = pattern.strip().lstrip("&!")
            if not name or name.startswith(("~", "@")) or any(c in name for c in "*?[]"):
                continue  # a regular expression, a file or a wildcard: Ansible's own to match
            if name not in self.site.hosts and name not in self.site.groups:
                hint = did_you_mean(name, [*self.site.hosts, *self.site.groups], cutoff=0.6)
                text = f"{name} is no host or group of the inventory, and Ansible would run on the rest"
                self.at("--limit", "", text + (f": {hint}" if hint else ""))

    # ---- the inventory files themselves ----
    def inventory_files(self, source: str) -> None:
        path = Path(source)
        if path.is_dir():
            for child in sorted(path.iterdir()):
                if child.name.startswith(".") or child.name in ("group_vars", "host_vars", "artifacts"):
                    continue
                if child.suffix in (".yml", ".yaml"):
                    self.inventory_file(child)
            self.vars_dirs(path)
        elif path.is_file():
            if path.suffix in (".yml", ".yaml"):
                self.inventory_file(path)
            self.vars_dirs(path.parent)

    def inventory_file(self, path: Path) -> None:
        try:
            doc = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            return  # Ansible has already refused it (unparsed_is_failed)
        if not isinstance(doc, dict):
            return
        placed: dict[str, dict[str, tuple[str, Any]]] = {}
        for group, body in doc.items():
            self.group_body(path.name, str(group), body, placed)

    def group_body(self, file: str, group: str, body: Any, placed: dict[str, dict[str, tuple[str, Any]]]) -> None:
        subject = f"{file}: group {group}"
        if body is None:
            return
        if not isinstance(body, dict):
            self.at(subject, "", f"is {type_name(body)}: a group holds hosts:, vars: and children:")
            return
        for raw_key, value in body.items():
            key = str(raw_key)
            if key not in GROUP_KEYS:
                hint = did_you_mean(key, GROUP_KEYS, cutoff=0.6)
                if hint:
                    self.at(subject, "", f"has key {key!r}, which Ansible ignores: {hint}")
                else:
                    self.at(
                        subject,
                        key,
                        f"sits directly in the group, where Ansible ignores it: put it under "
                        f"{group}.vars (or in group_vars/{group}.yml)",
                    )
            elif key == "hosts":
                if value is not None and not isinstance(value, dict):
                    self.at(
                        subject,
                        "",
                        f"hosts: is {type_name(value)}: write a mapping, one host per key "
                        "(gpu-01: {ansible_host: ...})",
                    )
                    continue
                for host, hvars in (value or {}).items():
                    if not isinstance(hvars, dict):
                        continue  # Ansible refuses a host whose value is not a mapping (any_unparsed_is_failed)
                    for name, val in (hvars or {}).items():
                        before = placed.setdefault(str(host), {}).get(str(name))
                        if before is not None and before[1] != val:
                            self.at(
                                f"{file}: host {host}",
                                str(name),
                                f"is {show(val)} under group {group} but "
                                f"{show(before[1])} under group {before[0]}: give it once",
                            )
                        placed[str(host)].setdefault(str(name), (group, val))
            elif key == "vars" and value is not None and not isinstance(value, dict):
                self.at(subject, "", f"vars: is {type_name(value)}: write a mapping of variables")
            elif key == "children":
                if value is not None and not isinstance(value, dict):
                    self.at(subject, "", f"children: is {type_name(value)}: write a mapping of groups")
                    continue
                for raw_child, child_body in (value or {}).items():  # Ansible refuses a child that is no mapping
                    child = str(raw_child)
                    if child.startswith(("herd_", "ansible_")):
                        self.at(
                            subject,
                            child,
                            "is a variable under children:, where Ansible makes it a group: put it under vars:",
                        )
                        continue
                    self.group_body(file, child, child_body, placed)

    def vars_dirs(self, base: Path) -> None:
        for kind, known, noun in (
            ("group_vars", self.site.groups, "group"),
            ("host_vars", self.site.hosts, "host"),
        ):
            folder = base / kind
            if not folder.is_dir():
                continue
            for entry in sorted(folder.iterdir()):
                if entry.name.startswith("."):
                    continue
                name, suffix = os.path.splitext(entry.name) if entry.is_file() else (entry.name, "")
                if entry.is_file() and suffix not in _YAML_SUFFIXES:
                    continue
                if name not in known:
                    hint = did_you_mean(name, known, cutoff=0.6)
                    self.at(
                        f"{kind}/{entry.name}",
                        "",
                        f"names no {noun} of the inventory, so Ansible never reads "
                        "it" + (f": {hint}" if hint else f": rename it after a {noun}"),
                    )


def joined(name: str, problem: str) -> str:
    """A variable and what is wrong with it; an entry's problem ([2] ...) follows its list's name directly."""
    if not name:
        return problem
    return f"{name}{problem}" if problem.startswith("[") else f"{name} {problem}"


def qualified(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix)):
        return False
    return bool(QUALIFIED_NAME.match(name))


def type_problem(value: Any, option: Mapping[str, Any]) -> str:
    """Why ``value`` is not of the option's declared type (empty when it is)."""
    kind = option.get("type", "str")
    elements = option.get("elements")
    want = {
        "str": "a string",
        "path": "a path (string)",
        "list": "a list",
        "dict": "a mapping",
        "bool": "true or false",
        "int": "a whole number",
        "raw": "a value",
    }.get(kind, kind)
    if value is None:
        return f"is empty (null): give {want}" + (
            " such as [] for none"
            if kind == "list"
            else " such as {} for none"
            if kind == "dict"
            else " or remove the line"
        )
    if kind in ("str", "path"):
        if isinstance(value, str):
            return ""
        if isinstance(value, int | float) and not isinstance(value, bool):
            return f"is {show(value)}, a number (YAML read it so): quote it as a string"
        return f"is {type_name(value)} ({show(value)}): give {want}"
    if kind == "list":
        if isinstance(value, str):
            return f"is the string {value!r}: give a list such as [{', '.join(repr(v.strip()) for v in value.split(',') if v.strip()) or 'a, b'}]"  # noqa: E501
        if not isinstance(value, list):
            return f"is {type_name(value)}: give a list"
        if elements in ("str", "path"):
            for i, item in enumerate(value):
                if not isinstance(item, str):
                    return f"[{i}] is {type_name(item)} ({show(item)}): every entry is a string"
        if elements == "dict":
            for i, item in enumerate(value):
                if not isinstance(item, dict):
                    return f"[{i}] is {type_name(item)} ({show(item)}): every entry is a mapping"
        return ""
    if kind == "dict":
        if isinstance(value, list) and all(isinstance(v, str) and "=" in v for v in value) and value:
            return "is a list of key=value strings: give a mapping {key: value}"
        if isinstance(value, str):
            return f"is the string {value!r}: give a mapping {{key: value}}"
        if not isinstance(value, dict):
            return f"is {type_name(value)}: give a mapping {{key: value}}"
        return ""
    if kind == "bool":
        return "" if isinstance(value, bool) else f"is {type_name(value)} ({show(value)}): give true or false"
    if kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
        return "" if ok else f"is {type_name(value)} ({show(value)}): give a whole number"
    return ""
