"""A real worker node for the local real cluster: the pinned kubelet, containerd, runc and the CNI plugins.

The node joins as an on-prem CPU server of the example site (the first host of the inventory's ``cpu_nodes``,
with the labels and taints the playbooks give it) and runs pods in real containers on this machine: the kubelet,
containerd, runc and the CNI bridge and host-local plugins, each built from its Go module
(``scripts/components.sh``), and images built here and imported (``herd_local.images``; no registry is reachable).

Everything it changes on the machine is its own and removed again by ``down``: a private mount namespace holds
every mount the kubelet and containerd make (kept open by a bind mount in the node's directory), a cgroup root
``herd-<port>`` in each cgroup hierarchy holds every pod, a Linux bridge ``herd<port>`` without a gateway wires
the pods (they need no network beyond their own), and ``/run/herd/<port>`` holds the sockets. The kubelet
authenticates clients by certificates of the cluster's CA and authorizes them by webhook
authorization; it authenticates as ``system:node:<name>`` (the Node authorizer and NodeRestriction apply).

The node's address (a kubelet refuses a loopback one) is the bridge's: the first address of the node's pod
range, on this machine only. The kubelet serves its API there (the API server reaches it for logs); its health
endpoint stays on 127.0.0.1.

As on every kubelet, on start it sets the kernel tunables it expects (``vm.overcommit_memory=1``,
``kernel.panic=10``, ``kernel.panic_on_oops=1``, ``vm.panic_on_oom=0``) on this machine.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import yaml

from herd_local import images
from herd_local.errors import RealNodeError
from herd_local.pki import write_kubeconfig
from herd_local.ports import Ports

__all__ = ["NODE_PROCESSES", "RealNode", "RealNodeError", "unavailable"]

# Started in this order (containerd first: the kubelet talks to it), stopped in the reverse.
NODE_PROCESSES = ("containerd", "kubelet")
CGROUP_ROOT = Path("/sys/fs/cgroup")
RUNTIME_DIR = Path("/run/herd")
# The kubelet's CPU and memory, as what it may give pods: a little is kept back for this machine's own processes.
SYSTEM_RESERVED = {"cpu": "100m", "memory": "512Mi"}


def unavailable(bin_dir: Path) -> str | None:
    """Why this machine cannot run a real node (None when it can): root, runc, cgroups, overlayfs, the binaries."""
    if os.geteuid() != 0:
        return "not root (the kubelet and containerd need root)"
    needed = (*NODE_PROCESSES, "containerd-shim-runc-v2", "ctr", "runc", "bridge", "host-local", "loopback")
    missing = [b for b in needed if not (bin_dir / b).exists()]
    if missing:
        return f"{', '.join(missing)} not found in {bin_dir}: build them with scripts/components.sh"
    if not (CGROUP_ROOT / "memory").is_dir() and not (CGROUP_ROOT / "cgroup.controllers").exists():
        return f"no cgroup hierarchy at {CGROUP_ROOT}"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "the kernel has no overlayfs (containerd's snapshotter)"
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        return "no unshare/nsenter (util-linux)"
    return None


def cgroup_hierarchies() -> list[Path]:
    """The cgroup hierarchies under /sys/fs/cgroup: each v1 one once (named ones, and a hybrid host's unified v2
    tree, included), or the v2 root."""
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        return [CGROUP_ROOT]
    seen, out = set(), []
    for entry in sorted(CGROUP_ROOT.iterdir()):
        real = entry.resolve()
        if real in seen or not (real / "cgroup.procs").exists():
            continue
        seen.add(real)
        out.append(real)
    return out


def make_cgroup(path: str) -> list[Path]:
    """Create cgroup ``path`` (below the roots, parents first) in every hierarchy; return the new cgroups."""
    made = []
    for hierarchy in cgroup_hierarchies():
        cgroup = hierarchy
        for part in Path(path).parts:
            parent, cgroup = cgroup, cgroup / part
            cgroup.mkdir(exist_ok=True)
            # A new cpuset cgroup starts with no CPUs and no memory nodes: give it its parent's.
            for knob in ("cpuset.cpus", "cpuset.mems"):
                if (cgroup / knob).exists() and not (cgroup / knob).read_text().strip():
                    (cgroup / knob).write_text((parent / knob).read_text())
        made.append(cgroup)
    return made


def remove_cgroup(path: str) -> None:
    """Remove cgroup ``path`` and everything below it in every hierarchy (what still holds a process stays)."""
    for hierarchy in cgroup_hierarchies():
        # Deepest first (a cgroup is removed with rmdir, and only once it has no children), the root last; os.walk,
        # not Path.rglob: cgroups vanish while they are walked (a container that just ended).
        for directory, _, _ in os.walk(hierarchy / path, topdown=False):
            with contextlib.suppress(OSError):
                os.rmdir(directory)


@dataclass
class RealNode:
    """One real node of a local cluster.

    Attributes:
        directory: the node's state (configs, containerd's root, the kubelet's root, pod logs).
        base_port: the cluster's base port: the kubelet serves on its ``Ports``, and the port
            names this node's cgroup root, bridge and runtime directory.
        bin: the built components.
        name: the Node's name.
        labels: the labels it registers with (``--node-labels``).
        taints: the taints it registers with.
        pod_cidr: the cluster's pod range; the node takes a /24 of it.
    """

    directory: Path
    base_port: int
    bin: Path
    name: str
    labels: dict[str, str]
    taints: list[dict[str, str]] = field(default_factory=list)
    pod_cidr: str = "10.244.0.0/16"

    # ---------------------------------------------------------------- names
    @property
    def kubelet_port(self) -> int:
        return Ports(self.base_port).kubelet

    @property
    def healthz_port(self) -> int:
        return Ports(self.base_port).kubelet_health

    @property
    def runtime_dir(self) -> Path:
        """Sockets and containerd's state: short paths (a socket path has at most 107 bytes)."""
        return RUNTIME_DIR / str(self.base_port)

    @property
    def socket(self) -> Path:
        return self.runtime_dir / "containerd.sock"

    @property
    def cgroup_name(self) -> str:
        return f"herd-{self.base_port}"

    @property
    def bridge(self) -> str:
        return f"herd{self.base_port}"

    @property
    def address(self) -> str:
        """The node's address: the bridge's, the first of its pod range (host-local never hands it out)."""
        return str(next(ip_network(self.pod_subnet).hosts()))

    @property
    def mount_namespace(self) -> Path:
        return self.directory / "mntns"

    @property
    def pod_subnet(self) -> str:
        """A /24 of the pod range, chosen by port so that two local clusters do not share one."""
        subnets = list(ip_network(self.pod_cidr).subnets(new_prefix=24))
        return str(subnets[self.base_port % len(subnets)])

    def wrap(self) -> list[str]:
        """What starts a node process inside the node's mount namespace (nsenter execs it: the pid is its own)."""
        return ["nsenter", f"--mount={self.mount_namespace}", "--"]

    # ---------------------------------------------------------------- prepare
    def prepare(self, ca: Path, client: tuple[Path, Path], server: str) -> None:
        """Write the configs, create the cgroup root and the mount namespace. ``client`` is the node's
        certificate and key (``system:node:<name>`` in ``system:nodes``) signed by ``ca``."""
        for sub in ("containerd", "kubelet", "pod-logs", "cni/net.d", "cni/ipam"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        self.runtime_dir.mkdir(parents=True, exist_ok=True)
        self._make_cgroup_root()
        self._make_mount_namespace()
        self._make_bridge()
        (self.directory / "containerd" / "config.toml").write_text(self.containerd_config())
        (self.directory / "cni" / "net.d" / "10-herd.conflist").write_text(json.dumps(self.cni_config(), indent=2))
        (self.directory / "kubelet" / "config.yaml").write_text(yaml.safe_dump(self.kubelet_config(ca)))
        write_kubeconfig(self.directory / "kubelet.kubeconfig", server, ca, client, f"system:node:{self.name}")

    def _make_cgroup_root(self) -> None:
        make_cgroup(self.cgroup_name)

    def _make_mount_namespace(self) -> None:
        self.mount_namespace.touch()
        done = subprocess.run(
            ["unshare", f"--mount={self.mount_namespace}", "--propagation=private", "true"],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RealNodeError(f"cannot make the node's mount namespace: {done.stderr.strip()}")

    def _make_bridge(self) -> None:
        """The pods' bridge, made here (the bridge plugin reuses it) with the node's address on it."""
        prefix = ip_network(self.pod_subnet).prefixlen
        for command in (
            ["ip", "link", "add", self.bridge, "type", "bridge"],
            ["ip", "addr", "add", f"{self.address}/{prefix}", "dev", self.bridge],
            ["ip", "link", "set", self.bridge, "up"],
        ):
            done = subprocess.run(command, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise RealNodeError(f"{' '.join(command)}: {done.stderr.strip()}")

    def containerd_config(self) -> str:
        """containerd's config (version 3): its own root, state and socket; CRI with the pinned sandbox image,
        runc with the cgroupfs driver (as the kubelet), this node's CNI config and plugins."""
        d = self.directory / "containerd"
        runc = self.bin / "runc"
        return f"""version = 3
root = {json.dumps(str(d / "root"))}
state = {json.dumps(str(self.runtime_dir / "containerd"))}
imports = []
disabled_plugins = ["io.containerd.nri.v1.nri"]

[grpc]
  address = {json.dumps(str(self.socket))}

[plugins.'io.containerd.internal.v1.opt']
  path = {json.dumps(str(d / "opt"))}

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = {json.dumps(images.PAUSE_IMAGE)}

[plugins.'io.containerd.cri.v1.runtime']
  netns_mounts_under_state_dir = true
  # No OOM score below containerd's own: lowering one needs CAP_SYS_RESOURCE, which root may lack (in a VM's
  # sandbox, a container), and then every sandbox (score -998) fails to start.
  restrict_oom_score_adj = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = [{json.dumps(str(self.bin))}]
    conf_dir = {json.dumps(str(self.directory / "cni" / "net.d"))}
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = {json.dumps(str(runc))}
        SystemdCgroup = false

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
"""

    def cni_config(self) -> dict[str, Any]:
        """A bridge without a gateway and host-local addresses from this node's /24: every pod gets its own
        network namespace and address, and nothing on this machine's routes or firewall changes."""
        return {
            "cniVersion": "1.0.0",
            "name": f"herd-{self.base_port}",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": False,
                    "ipMasq": False,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": self.pod_subnet}]],
                        "dataDir": str(self.directory / "cni" / "ipam"),
                    },
                }
            ],
        }

    def kubelet_config(self, ca: Path) -> dict[str, Any]:
        """The KubeletConfiguration: loopback only, x509 + webhook auth, the cgroupfs driver under this node's
        cgroup root, cgroup v1 allowed (this machine has no v2), and pod limits enforced per container."""
        return {
            "apiVersion": "kubelet.config.k8s.io/v1beta1",
            "kind": "KubeletConfiguration",
            "address": self.address,
            "port": self.kubelet_port,
            "readOnlyPort": 0,
            "healthzBindAddress": "127.0.0.1",
            "healthzPort": self.healthz_port,
            "authentication": {
                "anonymous": {"enabled": False},
                "webhook": {"enabled": True},
                "x509": {"clientCAFile": str(ca)},
            },
            "authorization": {"mode": "Webhook"},
            "containerRuntimeEndpoint": f"unix://{self.socket}",
            "cgroupDriver": "cgroupfs",
            "cgroupRoot": f"/{self.cgroup_name}",
            # Kubernetes 1.35+ refuses cgroup v1 unless told otherwise; this kernel mounts only v1 controllers.
            "failCgroupV1": not (CGROUP_ROOT / "memory").is_dir(),
            "failSwapOn": False,
            "podLogsDir": str(self.directory / "pod-logs"),
            "registerWithTaints": self.taints,
            "systemReserved": SYSTEM_RESERVED,
            "enforceNodeAllocatable": ["pods"],
            # A shared development machine's disk is not the node's to defend: evict only when nearly full.
            "evictionHard": {
                "memory.available": "100Mi",
                "nodefs.available": "2%",
                "imagefs.available": "2%",
                "nodefs.inodesFree": "2%",
            },
            "imageGCHighThresholdPercent": 100,
            "imageGCLowThresholdPercent": 99,
            "serializeImagePulls": False,
            "shutdownGracePeriod": "0s",
            "staticPodPath": "",
        }

    def kubelet_args(self) -> list[str]:
        d = self.directory
        return [
            f"--config={d / 'kubelet' / 'config.yaml'}",
            f"--kubeconfig={d / 'kubelet.kubeconfig'}",
            f"--root-dir={d / 'kubelet'}",
            f"--cert-dir={d / 'kubelet' / 'pki'}",
            f"--hostname-override={self.name}",
            f"--node-ip={self.address}",
            "--node-labels=" + ",".join(f"{k}={v}" for k, v in sorted(self.labels.items())),
            "--v=1",
        ]

    def containerd_args(self) -> list[str]:
        return [f"--config={self.directory / 'containerd' / 'config.toml'}", "--log-level=warn"]

    # ---------------------------------------------------------------- use
    def ctr(self, *args: str, timeout: float = 300.0) -> str:
        done = subprocess.run(
            [str(self.bin / "ctr"), f"--address={self.socket}", "--namespace=k8s.io", *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RealNodeError(f"ctr {' '.join(args[:2])}: {done.stderr.strip()[:300]}")
        return done.stdout

    def wait_for_containerd(self, alive: Callable[[], bool], timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not alive():
                raise RealNodeError("containerd exited at start")
            with contextlib.suppress(RealNodeError, subprocess.TimeoutExpired):
                self.ctr("version", timeout=5)
                return
            time.sleep(0.2)
        raise RealNodeError(f"containerd did not answer on {self.socket} within {timeout:.0f} s")

    def import_images(self, log: Callable[[str], None] = print) -> list[str]:
        """Import every image herd builds here (the sandbox image, the example's) into the node's containerd;
        the references imported."""
        names = []
        for image in images.ensure(log=log):
            self.ctr("images", "import", *images.import_args(image))
            names.append(image.reference)
        return names

    # ---------------------------------------------------------------- tear down
    def stop_workloads(self, timeout: float = 10.0) -> None:
        """Kill every container of the node (by its cgroup) and containerd's shims (by their socket): what
        containerd would leave running after it stops."""
        for _ in range(2):
            for pid in self._cgroup_pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            for pid in self._shim_pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
            while (self._cgroup_pids() or self._shim_pids()) and time.monotonic() < deadline:
                time.sleep(0.1)

    def _cgroup_pids(self) -> set[int]:
        pids: set[int] = set()
        for hierarchy in cgroup_hierarchies():
            root = hierarchy / self.cgroup_name
            # os.walk, not Path.rglob: cgroups vanish while they are walked (a container that just ended).
            for directory, _, files in os.walk(root):
                if "cgroup.procs" in files:
                    with contextlib.suppress(OSError):
                        pids.update(int(p) for p in Path(directory, "cgroup.procs").read_text().split())
        return pids

    def _shim_pids(self) -> set[int]:
        pids = set()
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"containerd-shim-runc-v2") and str(self.socket).encode() in argv:
                pids.add(int(proc.name))
        return pids

    def teardown(self) -> None:
        """After the processes are stopped: release the mount namespace (and with it every mount the node made),
        remove the bridge, the cgroup root and the runtime directory. Safe to call again."""
        self.stop_workloads()
        if self.mount_namespace.exists():
            subprocess.run(["umount", str(self.mount_namespace)], capture_output=True, check=False)
        if Path(f"/sys/class/net/{self.bridge}").exists():
            subprocess.run(["ip", "link", "delete", self.bridge], capture_output=True, check=False)
        remove_cgroup(self.cgroup_name)
        shutil.rmtree(self.runtime_dir, ignore_errors=True)
