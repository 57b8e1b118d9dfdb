"""The playbooks, run for real over SSH on booted Debian test hosts (systemd-nspawn; see testbed.py), making a real
Kubernetes cluster.

One testbed per Debian release serves the whole module, and the tests run in order like an operator's day:
control plane, join (with a host whose apt is broken and one that is not there), pods on the new nodes, a second
run that changes nothing, testinfra on the result, verify catching a broken node, then removals — alive, blocked
by a PodDisruptionBudget, and dead. Every test runs on bookworm and on trixie (the ``release`` fixture), one
release's testbed after the other.

kubeadm, the kubelet and kubectl are the pinned upstream v1.36.3 binaries (scripts/components.sh), containerd
2.2.9 and runc 1.3.7 too, packaged as upstream packages them and installed by the roles from signed test
repositories; the API server, etcd, controller manager and scheduler are kubeadm's static pods, from images built
here (herd_local/images.py). What stands in: the pod network (the CNI bridge plugin instead of Calico, testbed.py),
and the NVIDIA driver and container toolkit, which are TEST DOUBLES (tests/playbooks/doubles; no GPU here; the
toolkit's runtime forwards to runc). What a container cannot show (kernel modules, vm./fs. sysctls, chrony
running, a real GPU) is listed in docs/development/test-hosts.md.
"""

from __future__ import annotations

import base64
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import testinfra
import yaml

from herd_local import gpu_facts, images
from herd_ops import RunResult, run_playbook
from tests.playbooks.doubles.aptrepo import nvidia_driver_releases
from tests.playbooks.testbed import RELEASES, HostSpec, Testbed, why_no_cluster, why_not_available

pytestmark = pytest.mark.hosts

# The fake GPUs: GPU fixtures (tests/fixtures/gpu), whose nvidia-smi answers the driver double gives.
H100 = "h100-80gb-hbm3-x2"
A100 = "a100-sxm4-40gb-x1"
HOSTS = [
    HostSpec("cp1", "control_plane"),
    HostSpec("gpu1", "gpu_nodes", gpus=H100),
    HostSpec("gpu2", "gpu_nodes", gpus=A100, host_vars={"herd_node_pool": "onprem-a100",
                                                           "herd_node_labels": {"herd.dev/team": "vision"}}),
    HostSpec("cpu1", "cpu_nodes"),
    HostSpec("aptbroken", "cpu_nodes", broken_apt=True),
    HostSpec("ghost", "cpu_nodes", boot=False),
]  # fmt: skip
HEALTHY = "cp1,gpu1,gpu2,cpu1"
TOKEN = re.compile(r"\b[a-z0-9]{6}\.[a-z0-9]{16}\b")
HERD_TOKEN = "herd join.yml run for "
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


@pytest.fixture(scope="module", params=RELEASES)
def release(request: pytest.FixtureRequest) -> str:
    if (reason := why_not_available(request.param) or why_no_cluster()) is not None:
        if os.environ.get("CI") and os.geteuid() == 0:
            pytest.fail(f"CI must be able to run the test hosts (scripts/test.sh prepares them): {reason}")
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


def summary(result: RunResult) -> dict[str, tuple[str, str | None, str | None]]:
    return {name: (h.status, h.failed_task, h.message) for name, h in result.hosts.items()}


def wait_for(what: str, check, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while (value := check()) in (None, False, [], {}):
        assert time.monotonic() < deadline, f"{what} within {timeout:.0f}s"
        time.sleep(2)
    return value


def herd_tokens(bed: Testbed) -> list[dict[str, Any]]:
    """The bootstrap tokens join.yml minted (Secrets of type bootstrap.kubernetes.io/token; the tokens
    themselves are never read)."""
    secrets = bed.get("secrets", "-n", "kube-system", "--field-selector=type=bootstrap.kubernetes.io/token")
    out = []
    for secret in secrets["items"]:
        data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()
                if k in ("description", "expiration")}  # fmt: skip
        out.append({**data, "created": secret["metadata"]["creationTimestamp"]})
    return out


def apply(bed: Testbed, *docs: dict[str, Any]) -> None:
    bed.kubectl("apply", "-f", "-", stdin=yaml.safe_dump_all(docs))


def pause_spec(tolerate_gpu: bool = False) -> dict[str, Any]:
    """A pod spec running the sandbox image (the one image every node has; nothing can be pulled here)."""
    spec: dict[str, Any] = {
        "containers": [{"name": "pause", "image": images.PAUSE_IMAGE, "imagePullPolicy": "Never"}],
        "terminationGracePeriodSeconds": 1,
    }
    if tolerate_gpu:
        spec["tolerations"] = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    return spec


def pause_pod(name: str, node: str, tolerate_gpu: bool = False) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": node, **pause_spec(tolerate_gpu)}}  # fmt: skip


def test_control_plane(bed: Testbed, tmp_path: Path) -> None:
    result = run(bed, "control_plane", tmp_path)
    assert result.ok, summary(result)
    assert result.hosts["cp1"].changed > 0
    assert bed.kubeconfig.stat().st_mode & 0o777 == 0o600
    assert f"server: https://{bed.address('cp1')}:6443" in bed.kubeconfig.read_text()

    # A real API server of the pinned release answers through the fetched kubeconfig.
    version = json.loads(bed.kubectl("version", "-o", "json").stdout)
    assert version["serverVersion"]["gitVersion"] == "v1.36.3"
    # kubeadm init ran from the role's configuration, as kubeadm recorded it in the cluster.
    kubeadm_config = bed.get("configmap", "kubeadm-config", "-n", "kube-system")["data"]
    cluster = yaml.safe_load(kubeadm_config["ClusterConfiguration"])
    assert cluster["kubernetesVersion"] == "v1.36.3"
    assert cluster["controlPlaneEndpoint"] == f"{bed.address('cp1')}:6443"
    assert cluster["networking"] == {"podSubnet": "10.244.0.0/16", "serviceSubnet": "10.96.0.0/12",
                                     "dnsDomain": "cluster.local"}  # fmt: skip
    assert cluster["etcd"]["local"]["imageTag"] == images.ETCD_IMAGE_TAG
    kubelet = yaml.safe_load(bed.get("configmap", "kubelet-config", "-n", "kube-system")["data"]["kubelet"])
    assert kubelet["cgroupDriver"] == "systemd" and kubelet["failCgroupV1"] is False

    # The control plane is kubeadm's static pods, running from the images the role imported.
    def static_pods() -> dict[str, str] | None:
        pods = bed.get("pods", "-n", "kube-system", "-l", "tier=control-plane")["items"]
        phases = {p["metadata"]["labels"]["component"]: p["status"].get("phase") for p in pods}
        return phases if set(phases.values()) == {"Running"} and len(phases) == 4 else None

    assert set(wait_for("the four static pods Running", static_pods)) == {
        "etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}  # fmt: skip
    # The phases the test inventory skips (docs/development/test-hosts.md): no CoreDNS, no kube-proxy.
    assert bed.kubectl("get", "daemonset", "kube-proxy", "-n", "kube-system", check=False).returncode != 0

    # The node registered with the playbooks' labels and kubeadm's taint, and is Ready on the CNI stand-in.
    node = bed.settled_nodes(["cp1"])["cp1"]
    assert node["labels"]["herd.dev/pool"] == "control-plane" and node["labels"]["herd.dev/location"] == "onprem"
    assert node["taints"] == [{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]
    addresses = {a["type"]: a["address"] for a in node["node"]["status"]["addresses"]}
    assert addresses["InternalIP"] == bed.address("cp1")
    assert node["node"]["status"]["nodeInfo"]["kubeletVersion"] == "v1.36.3"
    assert node["node"]["status"]["nodeInfo"]["containerRuntimeVersion"] == "containerd://2.2.9"
    # init's 24-hour token is gone: joins use the short one join.yml mints.
    assert herd_tokens(bed) == []
    record = yaml.safe_load_all(bed.read("cp1", "/etc/kubernetes/herd-kubeadm-init.yaml"))
    assert next(record)["skipPhases"] == ["addon/coredns", "addon/kube-proxy"]


def test_join_converges_healthy_hosts_and_names_the_failed_ones(bed: Testbed, tmp_path: Path) -> None:
    result = run(bed, "join", tmp_path)
    assert not result.ok
    assert {h.name for h in result.failed_hosts} == {"aptbroken", "ghost"}, summary(result)
    assert result.hosts["ghost"].status == "unreachable"
    assert result.hosts["aptbroken"].failed_task == "Base packages"
    assert "apt" in (result.hosts["aptbroken"].message or "").lower()
    for name in ("gpu1", "gpu2", "cpu1"):
        assert result.hosts[name].status == "changed", summary(result)

    # One short-lived token was minted for the whole run, naming the hosts it was for.
    (token,) = herd_tokens(bed)
    assert token["description"] == f"{HERD_TOKEN}gpu1,gpu2,cpu1"
    created = time.mktime(time.strptime(token["created"], "%Y-%m-%dT%H:%M:%SZ"))
    expires = time.mktime(time.strptime(token["expiration"], "%Y-%m-%dT%H:%M:%SZ"))
    assert 29 * 60 <= expires - created <= 31 * 60
    # The nodes joined through the endpoint. A JoinConfiguration without unsafeSkipCAVerification is refused by
    # kubeadm unless its caCertHashes pin the cluster's CA, so each join also checked the pin.
    for name in ("gpu1", "gpu2", "cpu1"):
        assert f"server: https://{bed.address('cp1')}:6443" in bed.read(name, "/etc/kubernetes/kubelet.conf")
        assert bed.ssh(name, "ls /tmp/*.kubeadm-join.yaml", check=False).returncode != 0, "token file left behind"

    nodes = bed.nodes
    assert set(nodes) == {"cp1", "gpu1", "gpu2", "cpu1"}
    assert all(n["ready"] for n in nodes.values()), {k: n["ready"] for k, n in nodes.items()}  # verify waited
    nodes = bed.settled_nodes(nodes)  # and the node lifecycle controller has lifted its not-ready taints
    assert {k: v for k, v in nodes["gpu1"]["labels"].items() if not k.startswith(("kubernetes.io", "beta."))} == {
        "herd.dev/location": "onprem", "herd.dev/pool": "onprem-gpu", "herd.dev/tier": "gpu",
        **gpu_facts.load(H100).gfd_herd_labels(),  # nvidia.com/gpu.product, .count, .memory as GFD writes them
    }  # fmt: skip
    assert nodes["gpu1"]["taints"] == [GPU_TAINT]
    assert (
        nodes["gpu2"]["labels"]["nvidia.com/gpu.product"]
        == gpu_facts.load(A100).gfd_labels["nvidia.com/gpu.product"]
    )
    assert nodes["gpu2"]["labels"]["herd.dev/pool"] == "onprem-a100"
    assert nodes["gpu2"]["labels"]["herd.dev/team"] == "vision"
    assert nodes["cpu1"]["taints"] == [] and "nvidia.com/gpu.product" not in nodes["cpu1"]["labels"]
    assert nodes["cpu1"]["labels"]["herd.dev/tier"] == "high-cpu"
    # nvidia-smi was asked exactly the question the role parses; the driver double only exists where GPUs are.
    assert any("--query-gpu=name,memory.total,count" in c["argv"] for c in bed.calls("gpu1", "nvidia-smi"))
    assert bed.ssh("cpu1", "command -v nvidia-smi", check=False).returncode != 0


def test_pods_run_on_the_joined_nodes(bed: Testbed) -> None:
    apply(bed, pause_pod("on-gpu1", "gpu1", tolerate_gpu=True), pause_pod("on-cpu1", "cpu1"))

    def running() -> dict[str, dict[str, Any]] | None:
        pods = {p["metadata"]["name"]: p for p in bed.get("pods", "-n", "default")["items"]}
        ok = all(p["status"].get("phase") == "Running" for p in pods.values()) and len(pods) == 2
        return pods if ok else None

    pods = wait_for("both pods Running", running)
    # Each pod has an address of its node's range on the pod network.
    assert pods["on-gpu1"]["status"]["podIP"].startswith(bed.pod_range("gpu1").rsplit(".", 1)[0] + ".")
    assert pods["on-cpu1"]["status"]["podIP"].startswith(bed.pod_range("cpu1").rsplit(".", 1)[0] + ".")
    # containerd ran the GPU node's containers through the NVIDIA runtime (its default there), the CPU node's not.
    assert any("create" in c["argv"] for c in bed.calls("gpu1", "nvidia-container-runtime"))
    assert bed.calls("cpu1", "nvidia-container-runtime") == []


def test_second_run_changes_nothing(bed: Testbed, tmp_path: Path) -> None:
    for playbook in ("control_plane", "join"):
        result = run(bed, playbook, tmp_path / playbook, limit=HEALTHY)
        assert result.ok, summary(result)
        assert {n: h.changed for n, h in result.hosts.items() if h.changed} == {}, playbook
    assert len(herd_tokens(bed)) == 1, "no token is minted when every host has joined"


@pytest.mark.parametrize("name", ["gpu1", "gpu2", "cpu1"])
def test_node_state_testinfra(bed: Testbed, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # testinfra reads the inventory with ansible-inventory: the one beside this Python.
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    host = testinfra.get_host(f"ansible://{name}?ansible_inventory={bed.inventory}")
    gpu = name.startswith("gpu")
    assert host.system_info.codename == bed.release
    assert host.service("containerd").is_running and host.service("containerd").is_enabled
    assert host.service("kubelet").is_running and host.service("kubelet").is_enabled
    assert host.package("containerd.io").version.startswith("2.2.9-")
    assert "v2.2.9" in host.check_output("containerd --version")
    assert host.check_output("runc --version").splitlines()[0] == "runc version 1.3.7"
    config = host.file("/etc/containerd/config.toml")
    assert config.contains("SystemdCgroup = true")
    assert config.contains('default_runtime_name = "nvidia"') == gpu
    assert config.contains('BinaryName = "/usr/bin/nvidia-container-runtime"') == gpu
    for package in ("kubelet", "kubeadm", "kubectl"):
        assert host.package(package).version == "1.36.3-1.1"
    assert host.check_output("kubeadm version -o short") == "v1.36.3"
    assert host.check_output("kubelet --version") == "Kubernetes v1.36.3"
    held = host.check_output("dpkg --get-selections kubelet kubeadm kubectl containerd.io")
    assert sorted(tuple(line.split()) for line in held.splitlines()) == [
        ("containerd.io", "hold"), ("kubeadm", "hold"), ("kubectl", "hold"), ("kubelet", "hold")]  # fmt: skip
    # The sandbox image came from the archive the inventory named, pinned against the kubelet's image GC.
    assert images.PAUSE_IMAGE in host.check_output("ctr -n k8s.io images ls -q")
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
    bed.kubectl("uncordon", "cpu1")  # the operator's call, once the node is fixed


def test_remove_alive_node(bed: Testbed, tmp_path: Path) -> None:
    result = run(bed, "remove_node", tmp_path, extravars={"remove_node_hosts": "gpu2"})
    assert result.ok, summary(result)
    assert "gpu2" not in bed.nodes
    # kubeadm reset ran, and the role removed what reset leaves.
    assert bed.ssh("gpu2", "test -e /etc/kubernetes/kubelet.conf", check=False).returncode != 0
    assert bed.ssh("gpu2", "test -e /var/lib/kubelet/config.yaml", check=False).returncode != 0
    assert bed.ssh("gpu2", "ls /etc/cni/net.d").stdout == "", "CNI configuration left"
    assert bed.ssh("gpu2", "test -e /var/lib/cni", check=False).returncode != 0
    assert bed.ssh("gpu2", "systemctl is-active kubelet", check=False).stdout.strip() == "inactive"
    again = run(bed, "remove_node", tmp_path / "again", extravars={"remove_node_hosts": "gpu2"})
    assert again.ok and again.hosts["gpu2"].changed == 0, "removing a removed node changes nothing"


def test_drain_blocked_by_a_disruption_budget_keeps_the_node(bed: Testbed, tmp_path: Path) -> None:
    # A one-replica Deployment on cpu1 whose PodDisruptionBudget allows no eviction.
    labels = {"app": "guarded"}
    apply(
        bed,
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "guarded", "namespace": "default"},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels},
                               "spec": {**pause_spec(), "nodeSelector": {"kubernetes.io/hostname": "cpu1"}}}}},
        {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
         "metadata": {"name": "guarded", "namespace": "default"},
         "spec": {"minAvailable": 1, "selector": {"matchLabels": labels}}},
    )  # fmt: skip
    wait_for("the guarded pod Running and the budget at 0 disruptions", lambda: (
        (pdb := bed.get("pdb", "guarded", "-n", "default")).get("status", {}).get("currentHealthy") == 1
        and pdb["status"]["disruptionsAllowed"] == 0))  # fmt: skip

    result = run(
        bed, "remove_node", tmp_path, extravars={"remove_node_hosts": "cpu1", "remove_node_drain_timeout": "5s"}
    )
    assert [h.name for h in result.failed_hosts] == ["cpu1"]
    message = result.hosts["cpu1"].message or ""
    assert "could not be drained within 5s" in message
    assert bed.nodes["cpu1"]["unschedulable"] is True, "left cordoned"
    assert bed.ssh("cpu1", "test -e /etc/kubernetes/kubelet.conf").returncode == 0, "not reset"
    pods = bed.get("pods", "-n", "default", "-l", "app=guarded")["items"]
    assert [p["spec"]["nodeName"] for p in pods] == ["cpu1"], "the guarded pod was not evicted"


def test_remove_dead_node(bed: Testbed, tmp_path: Path) -> None:
    bed.stop_host("gpu1")  # the server dies, with the pod test_pods_run_on_the_joined_nodes put there
    result = run(bed, "remove_node", tmp_path,
                 extravars={"remove_node_hosts": "gpu1", "remove_node_release_delay": 3})  # fmt: skip
    assert not result.hosts["gpu1"].failed, summary(result)
    assert "gpu1" not in bed.nodes
    # The out-of-service taint released the dead node's pod before the Node was deleted.
    assert bed.kubectl("get", "pod", "on-gpu1", "-n", "default", check=False).returncode != 0


def test_remove_without_hosts_is_refused(bed: Testbed, tmp_path: Path) -> None:
    result = run(bed, "remove_node", tmp_path)
    assert not result.ok
    assert "pass the servers to remove as -e remove_node_hosts=" in (result.hosts["localhost"].message or "")
