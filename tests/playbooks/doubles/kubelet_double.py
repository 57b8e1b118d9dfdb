#!/usr/bin/python3
"""TEST DOUBLE of kubelet, installed as /usr/bin/kubelet by the `kubelet` test-double package.

Started by the package's kubelet.service (with kubeadm's 10-kubeadm.conf drop-in, like the real package), it
checks what the real kubelet would need before it could run: its kubeconfig and KubeletConfiguration written by
kubeadm, the systemd cgroup driver matching containerd's, containerd's socket, swap off. Until kubeadm has run it
exits non-zero, so systemd restarts it every few seconds, as with the real kubelet; once satisfied it records its
flags, registers its Node with the testbed's pretend API server (labels and taints from its flags, as the real
kubelet does) and stays up (running no pods).
"""

from __future__ import annotations

import signal
import socket
import sys
import time
from pathlib import Path

sys.path.insert(0, "/usr/lib/herd-doubles")
import yaml
from _double_common import api, fail, record

VERSION = "@VERSION@"
TOOL = "kubelet"


def flag(args: list[str], name: str) -> str | None:
    for arg in args:
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return None


def main() -> None:
    args = sys.argv[1:]
    if args[:1] == ["--version"]:
        print(f"Kubernetes v{VERSION}")
        return
    config_path = flag(args, "config")
    kubeconfig = flag(args, "kubeconfig")
    if not config_path or not Path(config_path).is_file():
        fail(TOOL, f"failed to load kubelet config file, path: {config_path}: no such file (kubeadm has not run)")
    if not kubeconfig or not Path(kubeconfig).is_file():
        fail(TOOL, f"kubeconfig {kubeconfig} not found (kubeadm has not run)")
    config = yaml.safe_load(Path(config_path).read_text())
    if config.get("cgroupDriver") != "systemd":
        fail(TOOL, f"cgroupDriver {config.get('cgroupDriver')!r}: herd's containerd uses the systemd driver")
    runtime = str(config.get("containerRuntimeEndpoint", "")).removeprefix("unix://")
    if not runtime or not Path(runtime).is_socket():
        fail(TOOL, f"container runtime endpoint {runtime!r} is not a socket")
    for line in Path("/proc/swaps").read_text().splitlines()[1:]:
        if line.strip():
            fail(TOOL, "running with swap on is not supported (failSwapOn)")
    # Register the Node the way kubelet does: its name, the labels and taints from its flags.
    name = flag(args, "hostname-override") or socket.gethostname()
    labels = dict(p.split("=", 1) for p in (flag(args, "node-labels") or "").split(",") if p)
    taints = []
    for spec in (flag(args, "register-with-taints") or "").split(","):
        if spec:
            key_value, _, effect = spec.rpartition(":")
            key, _, value = key_value.partition("=")
            taints.append({"key": key, "value": value, "effect": effect})
    api("POST", f"/nodes/{name}", {"labels": labels, "taints": taints, "unschedulable": False})
    record(TOOL, args, state="running", registered=name)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
