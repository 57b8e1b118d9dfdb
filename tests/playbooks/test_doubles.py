"""The test doubles refuse what the real tools refuse — a double that accepts anything would prove nothing.

The kubeadm and kubectl doubles run here as plain processes (their records go to a scratch directory). Each bad
configuration must be refused with kubeadm's reason; a good one must get past every check to the preflight, which
fails here because this machine runs no containerd — before anything is written.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.playbooks.doubles.pretend_api import PretendApi

DOUBLES = Path(__file__).resolve().parent / "doubles"
TOKEN = "abcdef.0123456789abcdef"
CA = "sha256:" + "a" * 64

JOIN: dict[str, Any] = {
    "apiVersion": "kubeadm.k8s.io/v1beta4",
    "kind": "JoinConfiguration",
    "discovery": {"bootstrapToken": {"token": TOKEN, "apiServerEndpoint": "10.0.0.10:6443", "caCertHashes": [CA]}},
    "nodeRegistration": {
        "name": "gpu-01",
        "criSocket": "unix:///run/containerd/containerd.sock",
        "taints": [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
        "kubeletExtraArgs": [{"name": "node-labels", "value": "herd.dev/tier=gpu,nvidia.com/gpu.count=8"}],
    },
}


def run_double(name: str, args: list[str], tmp_path: Path, version: str = "1.36.3") -> subprocess.CompletedProcess:
    script = tmp_path / name
    script.write_text((DOUBLES / f"{name}_double.py").read_text().replace("@VERSION@", version))
    env = {**os.environ, "HERD_DOUBLES_ROOT": str(tmp_path / "root"), "PYTHONPATH": str(DOUBLES)}
    return subprocess.run(
        [sys.executable, str(script), *args], capture_output=True, text=True, env=env, check=False
    )


def join_with(change: Callable[[dict[str, Any]], None], tmp_path: Path) -> subprocess.CompletedProcess:
    config = copy.deepcopy(JOIN)
    change(config)
    path = tmp_path / "join.yaml"
    path.write_text(yaml.safe_dump(config))
    return run_double("kubeadm", ["join", "--config", str(path)], tmp_path)


def registration(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda c: c["nodeRegistration"].update(fields)


def bootstrap(**fields: Any) -> Callable[[dict[str, Any]], None]:
    return lambda c: c["discovery"]["bootstrapToken"].update(fields)


BAD_JOINS = [
    ("old-api", lambda c: c.update(apiVersion="kubeadm.k8s.io/v1beta3"),
     "this kubeadm reads 'kubeadm.k8s.io/v1beta4'"),
    ("unknown-field", lambda c: c.update(token=TOKEN), 'unknown field "token"'),
    ("bad-token", bootstrap(token="not-a-token"), "not a bootstrap token"),
    ("no-ca-pin", bootstrap(caCertHashes=[]), "caCertHashes"),
    ("skip-ca", bootstrap(unsafeSkipCAVerification=True), "never skips CA verification"),
    ("endpoint-without-port", bootstrap(apiServerEndpoint="10.0.0.10"), "apiServerEndpoint: not host:port"),
    ("map-extra-args", registration(kubeletExtraArgs={"node-labels": "a=b"}), "list of {name, value} in v1beta4"),
    ("self-label-kubernetes-io", registration(kubeletExtraArgs=[
        {"name": "node-labels", "value": "node-role.kubernetes.io/worker=true"}]), "may not set label"),
    ("bad-label-value", registration(kubeletExtraArgs=[{"name": "node-labels", "value": "herd.dev/team=a b"}]),
     "is not a valid label"),
    ("bad-taint-effect", registration(taints=[{"key": "k", "value": "v", "effect": "NoRun"}]), "effect"),
    ("docker-socket", registration(criSocket="unix:///var/run/dockershim.sock"), "criSocket"),
    ("bad-node-name", registration(name="GPU_01"), "is not a valid node name"),
    ("bad-cert-key", lambda c: c.update(controlPlane={"certificateKey": "short"}), "certificateKey"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "reason"), [c[1:] for c in BAD_JOINS], ids=[c[0] for c in BAD_JOINS])
def test_kubeadm_double_refuses_a_bad_join_configuration(change: Callable, reason: str, tmp_path: Path) -> None:
    proc = join_with(change, tmp_path)
    assert proc.returncode != 0
    assert reason in proc.stderr
    assert "[preflight]" not in proc.stderr


def test_kubeadm_double_accepts_a_good_join_configuration_up_to_preflight(tmp_path: Path) -> None:
    proc = join_with(lambda c: None, tmp_path)
    assert proc.returncode != 0 and "[preflight]" in proc.stderr, proc.stderr
    log = [
        json.loads(line) for line in (tmp_path / "root/var/log/herd-doubles/calls.jsonl").read_text().splitlines()
    ]
    assert log[-1]["refused"].startswith("[preflight]")


def test_kubeadm_double_refuses_another_kubernetes_version(tmp_path: Path) -> None:
    docs = [
        {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "InitConfiguration",
         "nodeRegistration": JOIN["nodeRegistration"]},
        {"apiVersion": "kubeadm.k8s.io/v1beta4", "kind": "ClusterConfiguration", "kubernetesVersion": "v1.35.0",
         "controlPlaneEndpoint": "10.0.0.10:6443",
         "networking": {"podSubnet": "10.244.0.0/16", "serviceSubnet": "10.96.0.0/12"}},
    ]  # fmt: skip
    path = tmp_path / "init.yaml"
    path.write_text(yaml.safe_dump_all(docs))
    proc = run_double("kubeadm", ["init", "--config", str(path)], tmp_path)
    assert "'v1.35.0' does not match this kubeadm v1.36.3" in proc.stderr
    docs[1]["kubernetesVersion"] = "v1.36.3"
    docs[1]["networking"]["serviceSubnet"] = "10.244.128.0/20"
    path.write_text(yaml.safe_dump_all(docs))
    proc = run_double("kubeadm", ["init", "--config", str(path)], tmp_path)
    assert "overlaps serviceSubnet" in proc.stderr


def test_kubeadm_double_never_records_a_token(tmp_path: Path) -> None:
    run_double("kubeadm", ["join", "--token", TOKEN, "--config", "/nonexistent"], tmp_path)
    assert TOKEN not in (tmp_path / "root/var/log/herd-doubles/calls.jsonl").read_text()


@pytest.fixture
def api(tmp_path: Path) -> PretendApi:
    server = PretendApi("127.0.0.1", 0)
    server.url = f"http://127.0.0.1:{server.httpd.server_address[1]}"
    (tmp_path / "root/etc/herd-test").mkdir(parents=True)
    (tmp_path / "root/etc/herd-test/api-url").write_text(server.url)
    server.nodes["gpu-01"] = {"labels": {}, "taints": [], "unschedulable": False}
    server.start()
    yield server
    server.stop()


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (
            ["drain", "gpu-01", "--ignore-daemonsets", "--timeout=5m", "--disable-eviction"],
            "bypasses PodDisruption",
        ),
        (["drain", "gpu-01", "--ignore-daemonsets"], "without --timeout"),
        (["drain", "gpu-01", "--timeout=5m"], "--ignore-daemonsets"),
        (["cordon", "gpu-02"], 'nodes "gpu-02" not found'),
        (["taint", "node", "gpu-01", "k=v:Sometimes"], "invalid taint spec"),
    ],
)
def test_kubectl_double_refuses(api: PretendApi, tmp_path: Path, args: list[str], reason: str) -> None:
    kubeconfig = tmp_path / "admin.conf"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    proc = run_double("kubectl", [f"--kubeconfig={kubeconfig}", *args], tmp_path)
    assert proc.returncode != 0 and reason in proc.stderr
    assert api.nodes["gpu-01"]["unschedulable"] is False


def test_kubectl_double_needs_a_kubeconfig(api: PretendApi, tmp_path: Path) -> None:
    proc = run_double("kubectl", ["get", "nodes"], tmp_path)
    assert proc.returncode != 0 and "no usable kubeconfig" in proc.stderr
