"""The local real cluster: it is the pinned upstream release, its simulated nodes are the example site's, and
``scripts/local-cluster.sh`` refuses what it cannot do in one line, with a non-zero exit and nothing left
running."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from pathlib import Path

import pytest

from herd_local.cluster import CONTROL_PLANE, LocalCluster
from herd_local.ports import free_base
from herd_local.processes import alive as _alive
from herd_local.real_node import RealNode, unavailable
from tests.conftest import REPO

SCRIPT = REPO / "scripts" / "local-cluster.sh"


def pinned(component: str, module: str) -> str:
    """The version scripts/components/<component>/go.mod pins for ``module``."""
    text = (REPO / "scripts" / "components" / component / "go.mod").read_text()
    m = re.search(rf"^\s*(?:require\s+)?{re.escape(module)} (v\S+)", text, re.M)
    assert m, f"{component}/go.mod does not require {module}"
    return m.group(1)


@pytest.mark.real_cluster
def test_the_cluster_is_the_pinned_upstream_release(real_control_plane: LocalCluster) -> None:
    # The API server, kubectl and etcd report the releases the wrapper modules pin, stamped as upstream does.
    release = pinned("kubernetes", "k8s.io/kubernetes")
    version = json.loads(real_control_plane.kubectl("get", "--raw", "/version"))
    assert version["gitVersion"] == release
    assert (version["major"], version["minor"]) == ("1", release.split(".")[1])
    assert version["gitTreeState"] == "clean" and not version["buildDate"].startswith("1970")
    client = json.loads(real_control_plane.kubectl("version", "--client", "-o", "json"))
    assert client["clientVersion"]["gitVersion"] == release
    etcd = subprocess.run(
        [str(real_control_plane.bin / "etcd"), "--version"], capture_output=True, text=True, check=True
    )
    assert f"etcd Version: {pinned('etcd', 'go.etcd.io/etcd/server/v3').lstrip('v')}" in etcd.stdout
    # and its nodes are the example site's, at the same release
    nodes = json.loads(real_control_plane.kubectl("get", "nodes", "-o", "json"))["items"]
    assert sorted(n["metadata"]["name"] for n in nodes) == [
        "cp-01", "cpu-01", "cpu-02", "cpu-burst-1", "gpu-01", "gpu-02", "gpu-03", "gpu-04", "gpu-a10g-spot-1",
    ]  # fmt: skip
    assert {n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes} == {release}


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT), *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _one_line(done: subprocess.CompletedProcess) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1, (done.returncode, done.stderr)
    return lines[0]


@pytest.mark.real_cluster
def test_a_second_up_is_one_line_and_changes_nothing(real_control_plane: LocalCluster) -> None:
    env = {
        "HERD_LOCAL_CLUSTER_DIR": str(real_control_plane.directory),
        "HERD_LOCAL_CLUSTER_PORT": str(real_control_plane.ports.base),
        "HERD_COMPONENTS_BIN": str(real_control_plane.bin),
    }
    line = _one_line(_run(env, "up"))
    assert line.startswith(
        f"herd-local: error: a local cluster is already running from {real_control_plane.directory}"
    )
    assert "run `scripts/local-cluster.sh down` first" in line
    assert real_control_plane.running().keys() == {
        "etcd",
        "kube-apiserver",
        "kube-controller-manager",
        "kube-scheduler",
        "kwok",
        "kueue",
    }


@pytest.mark.real_cluster
def test_a_taken_port_is_one_line_and_starts_nothing(real_control_plane: LocalCluster, tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        env = {
            "HERD_LOCAL_CLUSTER_DIR": str(tmp_path / "c"),
            "HERD_LOCAL_CLUSTER_PORT": str(port),
            "HERD_COMPONENTS_BIN": str(real_control_plane.bin),
        }
        line = _one_line(_run(env, "up"))
    assert line == (
        f"herd-local: error: port {port} on 127.0.0.1 (kube-apiserver) is taken: stop what holds it, or choose "
        "other ports with HERD_LOCAL_CLUSTER_PORT"
    )
    assert not (tmp_path / "c").exists()


def test_a_missing_binary_is_one_line(tmp_path: Path) -> None:
    env = {"HERD_LOCAL_CLUSTER_DIR": str(tmp_path / "c"), "HERD_COMPONENTS_BIN": str(tmp_path / "empty")}
    line = _one_line(_run(env, "up"))
    assert line == (
        f"herd-local: error: etcd not found in {tmp_path / 'empty'}: build it with scripts/components.sh"
    )
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("port", ["http", "0", "70000", "-1"])
def test_a_port_setting_that_is_no_port_is_one_line(tmp_path: Path, port: str) -> None:
    env = {"HERD_LOCAL_CLUSTER_DIR": str(tmp_path / "c"), "HERD_LOCAL_CLUSTER_PORT": port}
    line = _one_line(_run(env, "up"))
    assert line == f"herd-local: error: HERD_LOCAL_CLUSTER_PORT must be a port number, got {port!r}"
    assert not (tmp_path / "c").exists()


def test_herd_debug_brings_the_traceback_back(tmp_path: Path) -> None:
    env = {"HERD_LOCAL_CLUSTER_DIR": str(tmp_path / "c"), "HERD_COMPONENTS_BIN": str(tmp_path / "empty"),
           "HERD_DEBUG": "1"}  # fmt: skip
    done = _run(env, "up")
    assert done.returncode != 0
    assert "Traceback" in done.stderr and "LocalClusterError: etcd not found" in done.stderr


@pytest.mark.real_cluster
def test_up_then_down_stops_every_process_it_started_and_removes_its_state(
    real_control_plane: LocalCluster, tmp_path: Path
) -> None:
    base = free_base()
    env = {
        "HERD_LOCAL_CLUSTER_DIR": str(tmp_path / "c"),
        "HERD_LOCAL_CLUSTER_PORT": str(base),
        "HERD_COMPONENTS_BIN": str(real_control_plane.bin),
    }
    up = _run(env, "up")
    assert up.returncode == 0, up.stderr
    assert f"admin:  {tmp_path / 'c' / 'admin.kubeconfig'}" in up.stdout
    assert f"alice:  {tmp_path / 'c' / 'alice.kubeconfig'}  (team vision)" in up.stdout
    pids = LocalCluster(tmp_path / "c", base, real_control_plane.bin).running()
    real_node = unavailable(real_control_plane.bin) is None
    assert len(pids) == (8 if real_node else 6), pids
    # alice's kubeconfig works and holds her team's namespace; she may not read nodes
    kubectl = [str(real_control_plane.bin / "kubectl"), f"--kubeconfig={tmp_path / 'c' / 'alice.kubeconfig'}"]
    assert subprocess.run([*kubectl, "get", "jobs"], capture_output=True, check=False).returncode == 0
    denied = subprocess.run([*kubectl, "get", "nodes"], capture_output=True, text=True, check=False)
    assert 'User "alice" cannot list resource "nodes"' in denied.stderr

    down = _run(env, "down")

    first = "stopped kubelet, containerd, kueue, kwok" if real_node else "stopped kueue, kwok, kube-scheduler"
    assert down.returncode == 0 and down.stdout.startswith(first), down
    assert not (tmp_path / "c").exists()
    assert not any(_alive(pid, name) for name, pid in pids.items())  # gone (a zombie has no command line)
    assert _run(env, "status").returncode == 1
    if real_node:  # nothing of the real node is left on the machine: mounts, bridge, cgroups, sockets
        node = RealNode(tmp_path / "c" / "node", base, real_control_plane.bin, name="cpu-01", labels={})
        assert str(tmp_path / "c") not in Path("/proc/self/mountinfo").read_text()
        assert not Path(f"/sys/class/net/{node.bridge}").exists()
        assert not any((h / node.cgroup_name).exists() for h in Path("/sys/fs/cgroup").iterdir())
        assert not node.runtime_dir.exists()
        assert not node._shim_pids()


@pytest.mark.real_cluster
def test_without_what_a_real_node_needs_up_says_so_in_one_line_and_goes_on(
    real_control_plane: LocalCluster, tmp_path: Path
) -> None:
    no_kubelet = tmp_path / "bin"
    no_kubelet.mkdir()
    for binary in real_control_plane.bin.iterdir():
        if binary.name != "kubelet":
            (no_kubelet / binary.name).symlink_to(binary.resolve())
    base = free_base()
    env = {"HERD_LOCAL_CLUSTER_DIR": str(tmp_path / "c"), "HERD_LOCAL_CLUSTER_PORT": str(base),
           "HERD_COMPONENTS_BIN": str(no_kubelet)}  # fmt: skip
    try:
        up = _run(env, "up")
        assert up.returncode == 0, up.stderr
        reason = "not root (the kubelet and containerd need root)" if os.geteuid() else (
            f"kubelet not found in {no_kubelet}: build them with scripts/components.sh")  # fmt: skip
        said = f"no real node: {reason}; every server of the example site is a KWOK node"
        assert up.stdout.splitlines()[0] == said
        assert set(LocalCluster(tmp_path / "c", base, no_kubelet).running()) == set(CONTROL_PLANE)
    finally:
        _run(env, "down")
