"""validate_inventory stops a run on a bad inventory before any host is touched, naming what and where.

Each case edits a copy of inventory/example (whose hosts are addresses nobody answers on) and runs the real
join.yml: the run must fail on the validation play, with a message naming the host or variable, and no host may
be contacted (none unreachable, which any connection attempt would have made them).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from herd_ops import run_playbook

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def copy_example(tmp_path: Path) -> Path:
    inv = tmp_path / "site"
    shutil.copytree(REPO / "inventory" / "example", inv)
    return inv


def edit(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc))


def hosts(doc: dict[str, Any], group: str) -> dict[str, Any]:
    return doc["all"]["children"][group]["hosts"]


def second_control_plane(doc: dict[str, Any]) -> None:
    hosts(doc, "control_plane")["cp-02"] = {"ansible_host": "10.20.0.11"}


def three_control_planes(doc: dict[str, Any]) -> None:
    hosts(doc, "control_plane").update({"cp-02": {"ansible_host": "10.20.0.11"}, "cp-03": {"ansible_host": "x"}})


def label(key: str, value: str) -> Callable[[dict[str, Any]], None]:
    return lambda doc: hosts(doc, "gpu_nodes")["gpu-04"].update(herd_node_labels={key: value})


def taint(effect: str) -> Callable[[dict[str, Any]], None]:
    return lambda doc: hosts(doc, "gpu_nodes")["gpu-04"].update(
        herd_node_taints=[{"key": "herd.dev/team", "value": "vision", "effect": effect}]
    )


def underscore_name(doc: dict[str, Any]) -> None:
    hosts(doc, "cpu_nodes")["cpu_03"] = {"ansible_host": "10.20.0.33"}


def in_two_groups(doc: dict[str, Any]) -> None:
    hosts(doc, "cpu_nodes")["gpu-01"] = {}


CASES: list[tuple[str, str, Callable[[dict[str, Any]], None], str]] = [
    ("even-control-planes", "hosts.yml", second_control_plane, "control_plane has 2 host(s)"),
    ("ha-without-vip", "hosts.yml", three_control_planes, "3 control planes need herd_control_plane_vip"),
    ("kubernetes-io-label", "hosts.yml", label("node-role.kubernetes.io/worker", "true"),
     "gpu-04: herd_node_labels[node-role.kubernetes.io/worker]"),
    ("taxonomy-label", "hosts.yml", label("herd.dev/tier", "gpu"), "gpu-04: herd_node_labels[herd.dev/tier]"),
    ("bad-label-value", "hosts.yml", label("herd.dev/team", "vision team"),
     "gpu-04: herd_node_labels[herd.dev/team]"),
    ("bad-taint-effect", "hosts.yml", taint("NoRun"), "gpu-04: herd_node_taints entry"),
    ("underscore-name", "hosts.yml", underscore_name, "cpu_03: the inventory name becomes the Node's name"),
    ("two-groups", "hosts.yml", in_two_groups, "gpu-01 is in groups ['gpu_nodes', 'cpu_nodes']"),
    ("bad-tier", "group_vars/cpu_nodes.yml", lambda d: d.update(herd_node_tier="fast"),
     "cpu-01: herd_node_pool onprem-cpu must be a label value"),
    ("old-kubernetes", "group_vars/all.yml", lambda d: d.update(herd_kubernetes_version="1.34.6"),
     "herd_kubernetes_version 1.34.6 is not supported"),
    ("missing-pod-subnet", "group_vars/all.yml", lambda d: d.pop("herd_pod_subnet"),
     "herd_pod_subnet is required"),
    ("endpoint-without-port", "group_vars/all.yml", lambda d: d.update(herd_control_plane_endpoint="10.20.0.10"),
     "herd_control_plane_endpoint 10.20.0.10 must be host:port"),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("file", "change", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_inventory_stops_before_any_host(tmp_path: Path, file: str, change: Callable, message: str) -> None:
    inv = copy_example(tmp_path)
    edit(inv / file, change)
    result = run_playbook("join", inv)
    assert not result.ok
    messages = [h.message or "" for h in result.failed_hosts]
    assert any(message in m for m in messages), messages
    assert not any(h.unreachable for h in result.hosts.values()), "a host was contacted"
    assert all(h.changed == 0 for h in result.hosts.values())


@pytest.mark.slow
def test_example_inventory_is_valid() -> None:
    result = run_playbook(FIXTURES / "validate_only.yml", REPO / "inventory" / "example")
    assert result.ok, {h.name: h.message for h in result.failed_hosts}
    assert set(result.hosts) == {"cp-01", "gpu-01", "gpu-02", "gpu-03", "gpu-04", "cpu-01", "cpu-02"}
