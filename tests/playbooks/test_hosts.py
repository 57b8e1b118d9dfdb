"""The playbooks, run for real over SSH on booted Debian test hosts (systemd-nspawn; see testbed.py).

One testbed per Debian release serves the whole module, and the tests run in order like an operator's day:
control plane, join (with a host whose apt is broken and one that is not there), a second run that changes
nothing, testinfra on the result, verify catching a broken node, then removals — alive, blocked by a
PodDisruptionBudget, and dead. Every test runs on bookworm and on trixie (the ``release`` fixture), one release's
testbed after the other.

kubeadm, kubelet, kubectl, the NVIDIA driver and toolkit are TEST DOUBLES (tests/playbooks/doubles) installed
through the roles' own apt path; everything else (Debian packages, containerd, systemd, sysctls, SSH) is real.
What a container cannot show (kernel modules, vm./fs. sysctls, chrony running, a real GPU) is listed in the README.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
import testinfra

from herd_ops import RunResult, run_playbook
from tests.playbooks.doubles.aptrepo import nvidia_driver_releases
from tests.playbooks.testbed import RELEASES, HostSpec, Testbed, why_not_available

pytestmark = pytest.mark.hosts

H100 = ("NVIDIA H100 80GB HBM3", 81559)
A100 = ("NVIDIA A100-SXM4-40GB", 40960)
HOSTS = [
    HostSpec("cp1", "control_plane"),
    HostSpec("gpu1", "gpu_nodes", gpus=(H100, H100)),
    HostSpec("gpu2", "gpu_nodes", gpus=(A100,), host_vars={"herd_node_pool": "onprem-a100",
                                                           "herd_node_labels": {"herd.dev/team": "vision"}}),
    HostSpec("cpu1", "cpu_nodes"),
    HostSpec("aptbroken", "cpu_nodes", broken_apt=True),
    HostSpec("ghost", "cpu_nodes", boot=False),
]  # fmt: skip
HEALTHY = "cp1,gpu1,gpu2,cpu1"
TOKEN = re.compile(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b")


@pytest.fixture(scope="module", params=RELEASES)
def release(request: pytest.FixtureRequest) -> str:
    if (reason := why_not_available(request.param)) is not None:
        pytest.skip(reason)
    return request.param


@pytest.fixture(scope="module")
def bed(release: str, tmp_path_factory: pytest.TempPathFactory) -> Testbed:
    with Testbed(HOSTS, tmp_path_factory.mktemp(f"testbed-{release}"), release=release) as testbed:
        yield testbed


def run(bed: Testbed, playbook: str, tmp: Path, **kwargs) -> RunResult:
    result = run_playbook(playbook, bed.inventory, keep_artifacts=tmp / "artifacts", **kwargs)
    # Whatever happened, no bootstrap token may appear in anything the run left behind.
    for path in (tmp / "artifacts").rglob("*"):
        if path.is_file():
            assert not TOKEN.search(path.read_text(errors="replace")), f"a token leaked into {path}"
    return result


def summary(result: RunResult) -> dict[str, tuple[str, str | None]]:
    return {name: (h.status, h.failed_task) for name, h in result.hosts.items()}


def test_control_plane(bed: Testbed, tmp_path: Path) -> None:
    result = run(bed, "control_plane", tmp_path)
    assert result.ok, summary(result)
    assert result.hosts["cp1"].changed > 0
    (init,) = [c for c in bed.calls("cp1", "kubeadm") if c["argv"][0] == "init"]
    cluster = init["config"]["ClusterConfiguration"]
    registration = init["config"]["InitConfiguration"]["nodeRegistration"]
    assert cluster["kubernetesVersion"] == "v1.36.3"
    assert cluster["controlPlaneEndpoint"] == f"{bed.address('cp1')}:6443"
    assert cluster["networking"] == {"podSubnet": "10.244.0.0/16", "serviceSubnet": "10.96.0.0/12",
                                     "dnsDomain": "cluster.local"}  # fmt: skip
    assert {"name": "node-labels", "value": "herd.dev/location=onprem,herd.dev/pool=control-plane,"
            "herd.dev/tier=general"} in registration["kubeletExtraArgs"]  # fmt: skip
    assert init["config"]["KubeletConfiguration"]["cgroupDriver"] == "systemd"
    assert bed.kubeconfig.stat().st_mode & 0o777 == 0o600
    assert f"server: https://{bed.address('cp1')}:6443" in bed.kubeconfig.read_text()
    # The kubelet double came up once kubeadm had configured it, and registered the node.
    assert bed.nodes["cp1"]["labels"]["herd.dev/pool"] == "control-plane"


def test_join_converges_healthy_hosts_and_names_the_failed_ones(bed: Testbed, tmp_path: Path) -> None:
    result = run(bed, "join", tmp_path)
    assert not result.ok
    assert {h.name for h in result.failed_hosts} == {"aptbroken", "ghost"}
    assert result.hosts["ghost"].status == "unreachable"
    assert result.hosts["aptbroken"].failed_task == "Base packages"
    assert "apt" in (result.hosts["aptbroken"].message or "").lower()
    for name in ("gpu1", "gpu2", "cpu1"):
        assert result.hosts[name].status == "changed", summary(result)

    # One short-lived token was minted for the whole run, on the control plane.
    minted = json.loads(bed.read("cp1", "/var/lib/herd-doubles/tokens.json"))
    assert len(minted) == 1 and minted[0]["ttl"] == "30m"
    cluster = json.loads(bed.read("cp1", "/var/lib/herd-doubles/cluster.json"))
    for name in ("gpu1", "gpu2", "cpu1"):
        joined = json.loads(bed.read(name, "/var/lib/herd-doubles/join.json"))
        assert joined["token"] == minted[0]["token"]
        assert joined["ca_cert_hashes"] == [cluster["ca_cert_hash"]]
        assert joined["endpoint"] == f"{bed.address('cp1')}:6443"
        assert bed.ssh(name, "ls /tmp/*.kubeadm-join.yaml", check=False).returncode != 0, "token file left behind"

    gpu1 = json.loads(bed.read("gpu1", "/var/lib/herd-doubles/join.json"))
    assert gpu1["labels"] == {
        "herd.dev/location": "onprem", "herd.dev/pool": "onprem-gpu", "herd.dev/tier": "gpu",
        "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.count": "2",
        "nvidia.com/gpu.memory": "81559",
    }  # fmt: skip
    assert gpu1["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    gpu2 = json.loads(bed.read("gpu2", "/var/lib/herd-doubles/join.json"))
    assert gpu2["labels"]["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-40GB"
    assert gpu2["labels"]["herd.dev/pool"] == "onprem-a100" and gpu2["labels"]["herd.dev/team"] == "vision"
    cpu1 = json.loads(bed.read("cpu1", "/var/lib/herd-doubles/join.json"))
    assert cpu1["taints"] == [] and "nvidia.com/gpu.product" not in cpu1["labels"]
    assert cpu1["labels"]["herd.dev/tier"] == "high-cpu"
    # The kubelets registered their Nodes from the flags kubeadm wrote, as a real kubelet does.
    assert bed.nodes["gpu1"]["labels"] == gpu1["labels"]
    assert bed.nodes["gpu1"]["taints"] == gpu1["taints"]
    # nvidia-smi was asked exactly the question the role parses; the driver double only exists where GPUs are.
    assert any("--query-gpu=name,memory.total,count" in c["argv"] for c in bed.calls("gpu1", "nvidia-smi"))
    assert bed.ssh("cpu1", "command -v nvidia-smi", check=False).returncode != 0


def test_second_run_changes_nothing(bed: Testbed, tmp_path: Path) -> None:
    for playbook in ("control_plane", "join"):
        result = run(bed, playbook, tmp_path / playbook, limit=HEALTHY)
        assert result.ok, summary(result)
        assert {n: h.changed for n, h in result.hosts.items() if h.changed} == {}, playbook
    minted = json.loads(bed.read("cp1", "/var/lib/herd-doubles/tokens.json"))
    assert len(minted) == 1, "no token is minted when every host has joined"
    assert len([c for c in bed.calls("gpu1", "kubeadm") if c["argv"][0] == "join"]) == 1


@pytest.mark.parametrize("name", ["gpu1", "gpu2", "cpu1"])
def test_node_state_testinfra(bed: Testbed, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # testinfra reads the inventory with ansible-inventory: the one beside this Python.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    host = testinfra.get_host(f"ansible://{name}?ansible_inventory={bed.inventory}")
    gpu = name.startswith("gpu")
    assert host.system_info.codename == bed.release
    assert host.service("containerd").is_running and host.service("containerd").is_enabled
    assert host.service("kubelet").is_running and host.service("kubelet").is_enabled
    config = host.file("/etc/containerd/config.toml")
    assert config.contains("SystemdCgroup = true")
    assert config.contains('default_runtime_name = "nvidia"') == gpu
    assert config.contains('BinaryName = "/usr/bin/nvidia-container-runtime"') == gpu
    for package in ("kubelet", "kubeadm", "kubectl"):
        assert host.package(package).version == "1.36.3-1.1"
    held = host.check_output("dpkg --get-selections kubelet kubeadm kubectl")
    assert sorted(tuple(line.split()) for line in held.splitlines()) == [
        ("kubeadm", "hold"), ("kubectl", "hold"), ("kubelet", "hold")]  # fmt: skip
    assert host.sysctl("net.ipv4.ip_forward") == 1
    assert host.sysctl("net.bridge.bridge-nf-call-iptables") == 1
    sysctl_file = host.file("/etc/sysctl.d/90-herd-kubernetes.conf")
    assert sysctl_file.contains("fs.inotify.max_user_watches=524288")  # written; applied by a real kernel
    assert host.file("/etc/modules-load.d/herd-kubernetes.conf").contains("^br_netfilter$")
    assert "masked" in host.run("systemctl is-enabled swap.target").stdout
    assert host.service("chrony").is_enabled  # not running: a container lacks CAP_SYS_TIME
    assert host.exists("mount.nfs")
    assert host.file("/var/lib/kubelet/config.yaml").contains("cgroupDriver: systemd")
    if gpu:
        assert "hold" in host.check_output("dpkg --get-selections cuda-drivers nvidia-container-toolkit")
        assert host.package("nvidia-container-toolkit").version == "1.17.8-1"
        # NVIDIA's CUDA repository, key and driver pin of this host's own Debian release (the doubles' repository
        # for the other release has another driver version, so a wrong choice cannot install this one).
        cuda = nvidia_driver_releases()[bed.release]
        keyring = f"/etc/apt/keyrings/nvidia-cuda-{cuda['repo']}.asc"
        assert host.file(keyring).mode == 0o644
        sources = host.file("/etc/apt/sources.list.d/nvidia-cuda.sources")
        assert sources.contains(f"/nvidia/cuda/{cuda['repo']}/x86_64/")
        assert sources.contains(f"Signed-By: {keyring}")
        assert host.package("cuda-drivers").version == cuda["version"]
    else:
        assert not host.package("nvidia-container-toolkit").is_installed


def test_verify_cordons_a_node_that_fails(bed: Testbed, tmp_path: Path) -> None:
    bed.ssh("cpu1", "systemctl stop containerd")
    try:
        result = run(bed, "verify", tmp_path / "broken", limit="cpu1")
        assert [h.name for h in result.failed_hosts] == ["cpu1"]
        assert "containerd running" in (result.hosts["cpu1"].message or "")
        assert "(cordoned)" in (result.hosts["cpu1"].message or "")
        assert bed.nodes["cpu1"]["unschedulable"] is True
    finally:
        bed.ssh("cpu1", "systemctl start containerd")
    result = run(bed, "verify", tmp_path / "fixed", limit=HEALTHY)
    assert result.ok, summary(result)


def test_remove_alive_node(bed: Testbed, tmp_path: Path) -> None:
    before = len(bed.calls("cp1", "kubectl"))
    result = run(bed, "remove_node", tmp_path, extravars={"remove_node_hosts": "gpu2"})
    assert result.ok, summary(result)
    calls = [c["argv"] for c in bed.calls("cp1", "kubectl")[before:]]
    verbs = [next(a for a in argv if not a.startswith("-") and not a.startswith("/")) for argv in calls]
    assert verbs == ["get", "cordon", "drain", "delete"]
    drain = calls[2]
    assert "--ignore-daemonsets" in drain and "--timeout=10m" in drain and "--disable-eviction" not in drain
    assert "gpu2" not in bed.nodes
    assert [c["argv"] for c in bed.calls("gpu2", "kubeadm")][-1] == ["reset", "--force"]
    assert bed.ssh("gpu2", "test -e /etc/cni/net.d || test -e /var/lib/cni", check=False).returncode != 0
    assert bed.ssh("gpu2", "test -e /etc/kubernetes/kubelet.conf", check=False).returncode != 0
    assert bed.ssh("gpu2", "systemctl is-active kubelet", check=False).stdout.strip() == "inactive"
    again = run(bed, "remove_node", tmp_path / "again", extravars={"remove_node_hosts": "gpu2"})
    assert again.ok and again.hosts["gpu2"].changed == 0, "removing a removed node changes nothing"


def test_drain_blocked_by_a_disruption_budget_keeps_the_node(bed: Testbed, tmp_path: Path) -> None:
    with bed.api.lock:  # the pretend cluster: a PodDisruptionBudget that never allows evicting cpu1's pod
        bed.api.nodes["cpu1"]["pdb_blocks_eviction"] = True
    result = run(
        bed, "remove_node", tmp_path, extravars={"remove_node_hosts": "cpu1", "remove_node_drain_timeout": "5s"}
    )
    assert [h.name for h in result.failed_hosts] == ["cpu1"]
    assert "could not be drained within 5s" in (result.hosts["cpu1"].message or "")
    assert bed.nodes["cpu1"]["unschedulable"] is True, "left cordoned"
    assert not any(c["argv"][0] == "reset" for c in bed.calls("cpu1", "kubeadm")), "not reset"


def test_remove_dead_node(bed: Testbed, tmp_path: Path) -> None:
    bed.stop_host("gpu1")  # the server dies
    before = len(bed.calls("cp1", "kubectl"))
    result = run(bed, "remove_node", tmp_path, extravars={"remove_node_hosts": "gpu1"})
    assert not result.hosts["gpu1"].failed, summary(result)
    calls = [c["argv"] for c in bed.calls("cp1", "kubectl")[before:]]
    verbs = [next(a for a in argv if not a.startswith("-") and not a.startswith("/")) for argv in calls]
    assert verbs == ["get", "taint", "get", "delete"]
    assert "node.kubernetes.io/out-of-service=nodeshutdown:NoExecute" in calls[1]
    assert "gpu1" not in bed.nodes


def test_remove_without_hosts_is_refused(bed: Testbed, tmp_path: Path) -> None:
    result = run(bed, "remove_node", tmp_path)
    assert not result.ok
    assert "pass the servers to remove as -e remove_node_hosts=" in (result.hosts["localhost"].message or "")
