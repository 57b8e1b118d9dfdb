"""The teams' on-prem shares (the Kueue quotas infra derives from the stack) against the on-prem servers (the
example site's Nodes, sized as the local real cluster simulates them): Kueue admits by quota, not by free nodes, so
``herd-ops check-shares`` says in one line per flavor and resource where the shares do not fit the servers."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from typing import Any

import pytest

from herd_local.cluster import LocalCluster
from herd_local.objects import node_objects
from herd_local.paths import EXAMPLE_STACK
from herd_ops.shares import check, servers_of
from infra import config
from infra.addons import queues
from infra.plan import load_stack_file
from tests.conftest import Admin

GPU = "nvidia.com/gpu"
TAIL = "Kueue would admit sweeps on-prem that then wait for a server instead of going to the cloud"


def _objects(values: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ResourceFlavors and ClusterQueues infra derives from stack config ``values``, as API objects."""
    cfg = config.load(values)
    flavors = [
        {"metadata": {"name": f["name"]}, "spec": {k: v for k, v in f.items() if k != "name"}}
        for f in queues.flavors(cfg)
    ]
    cqs = [{"metadata": {"name": t.name}, "spec": queues.cluster_queue_spec(cfg, t)} for t in cfg.teams]
    return flavors, cqs


def _nodes(*, cordoned: tuple[str, ...] = (), not_ready: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The example site's Nodes as they register (Ready unless told), some cordoned."""
    nodes = node_objects("v1.36.3")
    for n in nodes:
        name = n["metadata"]["name"]
        n["spec"]["unschedulable"] = name in cordoned
        n["status"]["conditions"] = [{"type": "Ready", "status": "False" if name in not_ready else "True"}]
    return nodes


@pytest.fixture(scope="module")
def example() -> dict[str, Any]:
    return load_stack_file(EXAMPLE_STACK)


def test_a_flavors_servers_carry_its_labels_and_exactly_its_taints(example) -> None:
    flavors, _ = _objects(example)
    by_name = {f["metadata"]["name"]: f for f in flavors}
    names = lambda flavor, nodes: [n["metadata"]["name"] for n in servers_of(by_name[flavor], nodes)]  # noqa: E731
    # CPU servers only: the GPU servers' taint and the control plane's keep CPU-only runs away
    assert names("onprem", _nodes()) == ["cpu-01", "cpu-02"]
    # GPU servers, but not gpu-04, which is kept for one team (a taint of its own); no cloud node
    assert names("onprem-gpu", _nodes()) == ["gpu-01", "gpu-02", "gpu-03"]
    # a cordoned or NotReady server holds nothing
    assert names("onprem-gpu", _nodes(cordoned=("gpu-01",), not_ready=("gpu-02",))) == ["gpu-03"]


def test_the_example_sites_shares_fit_its_servers(example) -> None:
    assert [str(f) for f in check(*_objects(example), _nodes())] == [
        "onprem cpu: the teams' shares 80 (nlp 48, vision 32) fit in 128 (cpu-01, cpu-02)",
        "onprem memory: the teams' shares 320Gi (nlp 192Gi, vision 128Gi) fit in 512Gi (cpu-01, cpu-02)",
        "onprem-gpu cpu: the teams' shares 80 (nlp 48, vision 32) fit in 96 (gpu-01, gpu-02, gpu-03)",
        "onprem-gpu memory: the teams' shares 320Gi (nlp 192Gi, vision 128Gi) fit in 768Gi "
        "(gpu-01, gpu-02, gpu-03)",
        "onprem-gpu nvidia.com/gpu: the teams' shares 9 (nlp 3, vision 6) fit in 12 (gpu-01, gpu-02, gpu-03)",
    ]


def test_a_cluster_queue_being_deleted_holds_no_share(example) -> None:
    flavors, cqs = _objects(_bigger_nlp(example))
    nlp = next(cq for cq in cqs if cq["metadata"]["name"] == "nlp")
    nlp["metadata"]["deletionTimestamp"] = "2026-12-01T12:00:00Z"  # Kueue's finalizer holds it while in use
    assert [str(f) for f in check(flavors, cqs, _nodes()) if f.resource == GPU] == [
        "onprem-gpu nvidia.com/gpu: the teams' shares 6 (vision 6) fit in 12 (gpu-01, gpu-02, gpu-03)"
    ]


def _bigger_nlp(example: dict[str, Any]) -> dict[str, Any]:
    values = copy.deepcopy(example)
    nlp = next(t for t in values["herd:teams"] if t["name"] == "nlp")
    nlp["quota"] = {**nlp.get("quota", {}), "gpu": 8}  # cloud cap 1: an on-prem share of 7
    return values


@pytest.mark.parametrize(
    ("case", "nodes", "lines"),
    [
        (
            "two GPU servers down",
            {"cordoned": ("gpu-01",), "not_ready": ("gpu-02",)},
            [
                "onprem-gpu cpu: the teams' shares add up to 80 (nlp 48, vision 32) but its servers hold 32 "
                f"(gpu-03); {TAIL}",
                "onprem-gpu memory: the teams' shares add up to 320Gi (nlp 192Gi, vision 128Gi) but its servers "
                f"hold 256Gi (gpu-03); {TAIL}",
                "onprem-gpu nvidia.com/gpu: the teams' shares add up to 9 (nlp 3, vision 6) but its servers hold "
                f"4 (gpu-03); {TAIL}",
            ],
        ),
        (
            "every CPU server down",
            {"cordoned": ("cpu-01", "cpu-02")},
            [
                "onprem cpu: the teams' shares add up to 80 (nlp 48, vision 32) but its servers hold 0 "
                f"(no schedulable server); {TAIL}",
                "onprem memory: the teams' shares add up to 320Gi (nlp 192Gi, vision 128Gi) but its servers hold "
                f"0 (no schedulable server); {TAIL}",
            ],
        ),
    ],
)
def test_servers_down_leave_shares_that_do_not_fit_one_line_each(example, case, nodes, lines) -> None:
    bad = [str(f) for f in check(*_objects(example), _nodes(**nodes)) if not f.fits]
    assert bad == lines, case
    assert all("\n" not in line for line in bad)


def test_shares_bigger_than_the_servers_name_the_teams(example) -> None:
    bad = [str(f) for f in check(*_objects(_bigger_nlp(example)), _nodes()) if not f.fits]
    assert bad == [
        "onprem-gpu nvidia.com/gpu: the teams' shares add up to 13 (nlp 7, vision 6) but its servers hold 12 "
        f"(gpu-01, gpu-02, gpu-03); {TAIL}"
    ]


# ------------------------------------------------------------------------------------------------ the real cluster
def _check_shares(cluster: LocalCluster) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "herd_ops.cli", "check-shares", "--kubeconfig", str(cluster.admin_kubeconfig)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.real_cluster
def test_check_shares_reads_the_real_cluster_and_fails_in_one_line_per_shortfall(
    real_control_plane: LocalCluster, admin: Admin, example
) -> None:
    # GIVEN the local real cluster: the example stack's flavors and ClusterQueues, the example site's nodes
    # WHEN an operator checks the shares THEN they fit, each flavor and resource said in a line
    done = _check_shares(real_control_plane)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [str(f) for f in check(*_objects(example), _nodes())]
    # WHEN two GPU servers are cordoned (a broken one, one being drained) THEN it fails, one line per shortfall
    nodes = ("gpu-01", "gpu-02")
    for name in nodes:
        admin.request(
            "PATCH", f"/api/v1/nodes/{name}", {"spec": {"unschedulable": True}}, "application/merge-patch+json"
        )
    try:
        done = _check_shares(real_control_plane)
    finally:
        for name in nodes:
            patch = json.loads('{"spec": {"unschedulable": null}}')
            admin.request("PATCH", f"/api/v1/nodes/{name}", patch, "application/merge-patch+json")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"herd-ops: error: {line}"
        for line in (
            "onprem-gpu cpu: the teams' shares add up to 80 (nlp 48, vision 32) but its servers hold 32 "
            f"(gpu-03); {TAIL}",
            "onprem-gpu memory: the teams' shares add up to 320Gi (nlp 192Gi, vision 128Gi) but its servers hold "
            f"256Gi (gpu-03); {TAIL}",
            "onprem-gpu nvidia.com/gpu: the teams' shares add up to 9 (nlp 3, vision 6) but its servers hold "
            f"4 (gpu-03); {TAIL}",
        )
    ]


def test_without_a_cluster_check_shares_is_one_line(tmp_path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "herd_ops.cli", "check-shares", "--kubeconfig", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stderr) == (
        2,
        "herd-ops: error: no cluster to check: Invalid kube-config file. No configuration found.\n",
    )
