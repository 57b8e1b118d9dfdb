"""Booted Debian test hosts for the playbooks: systemd-nspawn containers on a private bridge, reached over SSH.

A :class:`Testbed` boots one container per :class:`HostSpec` from a cached Debian image — bookworm (12) or trixie
(13), the releases the roles support (tests/playbooks/hosts/build-rootfs.sh builds both) — through an overlay, so
every host starts clean and the image is never written. The hosts get systemd as PID 1, sshd, their own addresses
on ``10.213.<net>.0/24`` (a bridge created for the run; nothing is routed anywhere else), apt through a tinyproxy
started on the bridge address, and the TEST-DOUBLE apt repositories (tests/playbooks/doubles) served on the same
address. It writes an inventory shaped like inventory/example (same group_vars) with the test overrides as host
variables, and tears everything down on exit — also when a test fails or the set-up itself fails half-way:
containers stopped by their own PIDs, overlays unmounted, the bridge (and the veths on it) removed, tinyproxy and
the repository server stopped.

Containers never get capabilities that reach the host: systemd-nspawn's default set (no CAP_SYS_MODULE, no
CAP_SYS_TIME), their own network namespace. What they get beyond nspawn's defaults is what kind gives its node
containers so that containerd and the kubelet run inside them, no more:

- a cgroup of its own in every hierarchy (``herd-testbed/<host>``; nspawn's cgroup namespace makes it the host's
  root), writable from inside: a small PID-1 wrapper (``herd-test-init``) remounts the host's cgroup mounts
  read-write and links ``/dev/kmsg`` to ``/dev/console`` (the kubelet's OOM watcher reads it), then execs systemd;
- the ``@keyring`` system calls (runc puts each container in a session keyring of its own);
- ``/var/lib/containerd`` on a directory of the machine's (an overlay's upper directory cannot hold containerd's
  overlay snapshots; kind gives its nodes a /var volume for the same reason);
- the kernel tunables every kubelet checks (``vm.overcommit_memory``, ``kernel.panic`` ...), set on this machine
  before the hosts boot: they are not namespaced and ``/proc/sys`` is read-only inside, so a kubelet finding
  other values would exit. They are the values every kubelet sets on its machine (herd_local/real_node.py's does).

The pod network on the hosts is a STAND-IN for Calico (whose images cannot be pulled here): the CNI bridge plugin
with a host-local range per host (``10.244.<index + 1>.0/24``) written into ``/etc/cni/net.d`` at boot, and routes
between the hosts' ranges over the test bridge — what nodes need to become Ready and pods to reach each other.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from herd_local import gpu_facts, images
from herd_local.real_node import make_cgroup, remove_cgroup
from tests.conftest import built_components
from tests.playbooks.doubles.aptrepo import RepoServer, Versions, build_repos, repository_vars

REPO = Path(__file__).resolve().parents[2]
# The Debian releases test hosts run: those the roles' meta/main.yml platforms name (test_static.py holds them
# together) and build-rootfs.sh builds.
RELEASES = ("bookworm", "trixie")
DEFAULT_RELEASE = "bookworm"
CACHE = Path(os.environ.get("HERD_TEST_HOST_CACHE", "/var/cache/herd"))
LOCK = Path("/run/herd-testbed.lock")
# What a running testbed holds (processes with their start times, mounts, bridge), so that the next testbed can
# clean up after one whose test process was killed before it could tear down.
STATE = Path("/run/herd-testbed.json")
PROXY_PORT = 3142
# The taints the node lifecycle controller puts on and lifts (not-ready, unreachable, ...): never the playbooks'.
LIFECYCLE_TAINT_PREFIX = "node.kubernetes.io/"
REPO_PORT = 8213
FAKE_PCI = "/etc/herd-test/fake-pci"
# Test hosts are re-created each run with the image's host keys: nothing to pin, nothing to remember.
SSH_OPTIONS = ("StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "ConnectTimeout=10")
CGROUP_PARENT = "herd-testbed"
# What every kubelet sets on its machine at start (and exits when it cannot): kubelet's setupKernelTunables.
KUBELET_SYSCTLS = {"vm.overcommit_memory": "1", "vm.panic_on_oom": "0", "kernel.panic": "10",
                   "kernel.panic_on_oops": "1", "kernel.keys.root_maxkeys": "1000000",
                   "kernel.keys.root_maxbytes": "25000000"}  # fmt: skip
POD_SUBNET = "10.244.0.0/16"
INIT = "/usr/local/sbin/herd-test-init"
# TEST HOST ONLY: the container's PID 1 until systemd (see the module's docstring).
INIT_SCRIPT = """#!/bin/sh
# herd test host: make the host's own cgroups writable and give the kubelet a /dev/kmsg, then boot systemd.
for hierarchy in /sys/fs/cgroup/*; do
    mountpoint -q "$hierarchy" && mount -o remount,bind,rw "$hierarchy" "$hierarchy"
done
mount -o remount,rw /sys/fs/cgroup 2>/dev/null || true
[ -e /dev/kmsg ] || ln -s /dev/console /dev/kmsg
exec /lib/systemd/systemd "$@"
"""


def image(release: str) -> Path:
    """The cached root filesystem test hosts of ``release`` boot from."""
    if release not in RELEASES:
        raise ValueError(f"no test-host image for Debian {release!r}: one of {', '.join(RELEASES)}")
    return CACHE / f"rootfs-{release}"


@dataclass(frozen=True)
class HostSpec:
    """One test host.

    Attributes:
        name: inventory name and machine name.
        group: control_plane, gpu_nodes or cpu_nodes.
        gpus: the GPU fixture (tests/fixtures/gpu/<gpus>.json) of its fake GPUs: one PCI device per GPU, and the
            nvidia-smi double's answers; "" for none.
        broken_apt: point the host's apt at a dead proxy (a host made to fail).
        boot: False puts the host in the inventory without booting it (an unreachable host).
        host_vars: extra inventory variables.
        release: the Debian release it runs (default: the testbed's).
    """

    name: str
    group: str
    gpus: str = ""
    broken_apt: bool = False
    boot: bool = True
    host_vars: dict[str, Any] = field(default_factory=dict)
    release: str | None = None


def why_not_available(release: str = DEFAULT_RELEASE) -> str | None:
    """None when booted test hosts of ``release`` can run here, else the reason they cannot (a skip message)."""
    if os.geteuid() != 0:
        return "booted test hosts need root (systemd-nspawn, overlay mounts, a bridge); run as root"
    for tool in ("systemd-nspawn", "tinyproxy", "ip", "ssh", "ssh-keygen", "gpg", "dpkg-deb"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/test.sh installs scripts/apt-packages.txt)"
    if not (image(release) / ".herd-image").exists():
        return f"no test-host image at {image(release)}: run tests/playbooks/hosts/build-rootfs.sh as root"
    return None


def why_no_cluster() -> str | None:
    """None when the test hosts can run the real Kubernetes (the packages' binaries built, the images kubeadm
    needs built), else why not (a skip message)."""
    missing = [i.reference for i in images.kubeadm_images() if not i.built]
    if missing:
        return f"images not built ({', '.join(missing)}): run scripts/images.sh as root"
    return None


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True)


def _start_time(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _clean_leftovers() -> None:
    """Undo a testbed whose process died without tearing down (the caller holds the lock)."""
    try:
        state = json.loads(STATE.read_text())
    except (OSError, ValueError):
        return
    for pid, started in state.get("processes", []):
        if started is not None and _start_time(pid) == started:  # the same process, not a reused PID
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    time.sleep(1)
    for mount in reversed(state.get("mounts", [])):
        _run("umount", "-l", mount, check=False)
    _run("ip", "link", "delete", state.get("bridge", "herdbr-none"), check=False)
    remove_cgroup(CGROUP_PARENT)
    STATE.unlink(missing_ok=True)


def _wait_port(address: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((address, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def _set_kubelet_sysctls() -> None:
    for key, value in KUBELET_SYSCTLS.items():
        path = Path("/proc/sys") / key.replace(".", "/")
        if path.read_text().strip() != value:
            path.write_text(value)


class Testbed:
    __test__ = False  # not a test class, whatever its name

    """Boot ``hosts`` (Debian ``release`` unless a host names its own) on network ``10.213.<net>.0/24`` under
    ``workdir``; use as a context manager."""

    def __init__(
        self,
        hosts: list[HostSpec],
        workdir: Path,
        net: int = 0,
        versions: Versions | None = None,
        release: str = DEFAULT_RELEASE,
    ):
        self.hosts = hosts
        self.release = release
        for host in hosts:
            image(self.release_of(host))  # an unknown release fails here, before anything starts
        self.workdir = workdir
        self.net = net
        self.prefix = f"10.213.{net}"
        self.gateway = f"{self.prefix}.1"
        self.bridge = f"herdbr{net}"
        self.versions = versions or Versions()
        self.key = workdir / "id_ed25519"
        self.inventory = workdir / "inventory" / "hosts.yml"
        self.kubeconfig = workdir / "artifacts" / "admin.conf"
        self.repo_root = workdir / "apt"  # served at repo_url: the doubles' repositories, and what a test adds
        self._lock: int | None = None
        self._containers: dict[str, subprocess.Popen[bytes]] = {}
        self._mounts: list[Path] = []
        self._proxy: subprocess.Popen[bytes] | None = None
        self._repo: RepoServer | None = None
        self._bridge_up = False
        self._mounted_nspawn_tmpfs = False

    def release_of(self, host: HostSpec) -> str:
        return host.release or self.release

    # -- addresses ---------------------------------------------------------------------------------------------
    def address(self, name: str) -> str:
        index = [h.name for h in self.hosts].index(name)
        return f"{self.prefix}.{10 + index}"

    @property
    def repo_url(self) -> str:
        return f"http://{self.gateway}:{REPO_PORT}"

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def __enter__(self) -> Testbed:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._lock = os.open(LOCK, os.O_CREAT | os.O_RDWR, 0o600)
        fcntl.flock(self._lock, fcntl.LOCK_EX)  # one testbed at a time on this machine
        _clean_leftovers()
        if _run("ip", "link", "show", self.bridge, check=False).returncode == 0:
            # We hold the lock, so this is left over from a run that was killed: remove it.
            _run("ip", "link", "delete", self.bridge, check=False)
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "herd-testbed", "-f", str(self.key))
        _set_kubelet_sysctls()
        self._network()
        self._start_proxy()
        build_repos(self.repo_root, self.versions)
        self._repo = RepoServer(self.repo_root, self.gateway, REPO_PORT).__enter__()
        nspawn_run = Path("/run/systemd/nspawn")
        nspawn_run.mkdir(parents=True, exist_ok=True)
        if _run("mountpoint", "-q", str(nspawn_run), check=False).returncode != 0:
            _run("mount", "-t", "tmpfs", "-o", "mode=0755,size=16m", "tmpfs", str(nspawn_run))
            self._mounted_nspawn_tmpfs = True
        for host in self.hosts:
            if host.boot:
                self._boot(host)
        for host in self.hosts:
            if host.boot:
                self._wait_ssh(host)
        self._save_state()
        self._write_inventory()

    def _save_state(self) -> None:
        pids = [p.pid for p in self._containers.values()]
        pids += [pid for name in self._containers if (pid := self._leader(name)) is not None]
        if self._proxy is not None:
            pids.append(self._proxy.pid)
        state = {"processes": [[pid, _start_time(pid)] for pid in pids], "mounts": [str(m) for m in self._mounts],
                 "bridge": self.bridge}  # fmt: skip
        STATE.write_text(json.dumps(state))

    def _network(self) -> None:
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        self._bridge_up = True
        _run("ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")

    def _start_proxy(self) -> None:
        conf = self.workdir / "tinyproxy.conf"
        conf.write_text(
            f"User nobody\nGroup nogroup\nPort {PROXY_PORT}\nListen {self.gateway}\nTimeout 600\n"
            f"Allow {self.prefix}.0/24\nMaxClients 64\nLogLevel Warning\n"
        )
        log = (self.workdir / "tinyproxy.log").open("wb")
        self._proxy = subprocess.Popen(["tinyproxy", "-d", "-c", str(conf)], stdout=log, stderr=log)
        if not _wait_port(self.gateway, PROXY_PORT, 10):
            raise RuntimeError(f"tinyproxy did not listen on {self.gateway}:{PROXY_PORT}: see {log.name}")

    def _boot(self, host: HostSpec) -> None:
        base = self.workdir / "hosts" / host.name
        upper, work, root = base / "upper", base / "work", base / "root"
        for d in (upper, work, root):
            d.mkdir(parents=True, exist_ok=True)
        _run(
            "mount",
            "-t",
            "overlay",
            "overlay",
            "-o",
            f"lowerdir={image(self.release_of(host))},upperdir={upper},workdir={work}",
            str(root),
        )
        self._mounts.append(root)
        self._seed(host, root)
        containerd = base / "containerd"
        containerd.mkdir(exist_ok=True)
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        log = (logs / f"{host.name}.console.log").open("wb")
        # nspawn starts in the host's own cgroups (the shell moves itself there, then becomes nspawn), so they are
        # the root of the container's cgroup namespace.
        enter = 'for procs in $HERD_CGROUPS; do echo $$ > "$procs"; done; exec "$@"'
        cgroups = " ".join(str(c / "cgroup.procs") for c in make_cgroup(f"{CGROUP_PARENT}/{host.name}"))
        self._containers[host.name] = subprocess.Popen(
            ["/bin/sh", "-c", enter, "herd-test-host",
             "systemd-nspawn", "-q", "-D", str(root), "-M", host.name, "--register=no", "--keep-unit",
             "--kill-signal=SIGRTMIN+3", "--system-call-filter=@keyring",
             f"--bind={containerd}:/var/lib/containerd", f"--network-bridge={self.bridge}", "--link-journal=no",
             INIT],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, env={**os.environ, "HERD_CGROUPS": cgroups},
        )  # fmt: skip

    def pod_range(self, name: str) -> str:
        """The pod addresses of host ``name`` on the CNI stand-in (a /24 of POD_SUBNET per host)."""
        index = [h.name for h in self.hosts].index(name)
        return f"{POD_SUBNET.split('.0.0/', 1)[0]}.{index + 1}.0/24"

    def _seed(self, host: HostSpec, root: Path) -> None:
        def write(path: str, text: str, mode: int = 0o644) -> None:
            target = root / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            target.chmod(mode)

        write("/etc/hostname", f"{host.name}\n")
        write("/etc/hosts", f"127.0.0.1 localhost\n127.0.1.1 {host.name}\n")
        write("/etc/machine-id", secrets.token_hex(16) + "\n", 0o444)
        routes = "".join(f"\n[Route]\nDestination={self.pod_range(h.name)}\nGateway={self.address(h.name)}\n"
                         for h in self.hosts if h.name != host.name)  # fmt: skip
        write("/etc/systemd/network/10-host0.network",
              f"[Match]\nName=host0\n\n[Network]\nAddress={self.address(host.name)}/24\n"
              f"LinkLocalAddressing=no\nIPv6AcceptRA=no\n{routes}")  # fmt: skip
        write(INIT, INIT_SCRIPT, 0o755)
        write("/etc/cni/net.d/10-herd-test-bridge.conflist", json.dumps(self.cni_config(host.name), indent=2))
        wants = root / "etc/systemd/system/multi-user.target.wants"
        wants.mkdir(parents=True, exist_ok=True)
        link = wants / "systemd-networkd.service"
        if not link.is_symlink():
            link.symlink_to("/lib/systemd/system/systemd-networkd.service")
        pub = self.key.with_suffix(".pub").read_text()
        write("/root/.ssh/authorized_keys", pub, 0o600)
        proxy = f"http://{self.gateway}:{9 if host.broken_apt else PROXY_PORT}"
        write("/etc/apt/apt.conf.d/01herd-test-proxy", f'Acquire::http::Proxy "{proxy}";\n')
        # A fake PCI bus: always a NIC (not a GPU), plus one NVIDIA 3D controller per fake GPU.
        write(f"{FAKE_PCI}/0000:00:1f.6/vendor", "0x8086\n")
        write(f"{FAKE_PCI}/0000:00:1f.6/class", "0x020000\n")
        facts = gpu_facts.load(host.gpus) if host.gpus else None
        for i in range(facts.gpu_count if facts else 0):
            write(f"{FAKE_PCI}/0000:{0x17 + i:02x}:00.0/vendor", "0x10de\n")
            write(f"{FAKE_PCI}/0000:{0x17 + i:02x}:00.0/class", "0x030200\n")
        answers = (
            {"nvidia_smi_csv": facts.nvidia_smi_csv, "nvidia_smi_list": facts.nvidia_smi_list} if facts else {}
        )
        write("/etc/herd-test/fake-gpus.json", json.dumps(answers))

    def cni_config(self, name: str) -> dict[str, Any]:
        """The CNI stand-in's configuration on host ``name`` (bridge ``cni0``, this host's pod range)."""
        return {
            "cniVersion": "1.0.0",
            "name": "herd-test-bridge",
            "plugins": [
                {"type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": True, "hairpinMode": True,
                 "ipam": {"type": "host-local", "ranges": [[{"subnet": self.pod_range(name)}]],
                          "routes": [{"dst": "0.0.0.0/0"}]}},
            ],
        }  # fmt: skip

    def _wait_ssh(self, host: HostSpec, timeout: float = 90) -> None:
        address = self.address(host.name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._containers[host.name].poll() is not None:
                raise RuntimeError(
                    f"test host {host.name} exited while booting: see {self.workdir}/logs/{host.name}.console.log"
                )
            if _wait_port(address, 22, 1) and self.ssh(host.name, "true", check=False).returncode == 0:
                return
            time.sleep(0.5)
        raise RuntimeError(f"test host {host.name} ({address}) did not answer SSH within {timeout:.0f}s")

    def close(self) -> None:
        """Tear everything down; safe to call more than once and after a partial start."""
        leaders = {}
        for name, proc in self._containers.items():
            if proc.poll() is None:
                leaders[name] = self._leader(name)
                proc.send_signal(signal.SIGTERM)  # systemd-nspawn -b: an orderly poweroff of the container
        for name, proc in self._containers.items():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                # Killing nspawn alone would leave the container running: kill its init, which takes every
                # process of the container with it, then nspawn exits by itself.
                if leaders.get(name):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(leaders[name], signal.SIGKILL)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)
        self._containers.clear()
        remove_cgroup(CGROUP_PARENT)
        for root in reversed(self._mounts):
            if _run("umount", str(root), check=False).returncode != 0:
                _run("umount", "-l", str(root), check=False)
        self._mounts.clear()
        if self._repo is not None:
            self._repo.__exit__(None, None, None)
            self._repo = None
        if self._proxy is not None:
            self._proxy.terminate()
            try:
                self._proxy.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proxy.kill()
            self._proxy = None
        if self._bridge_up:
            _run("ip", "link", "delete", self.bridge, check=False)
            self._bridge_up = False
        if self._mounted_nspawn_tmpfs:
            _run("umount", "/run/systemd/nspawn", check=False)
            self._mounted_nspawn_tmpfs = False
        if self.workdir.exists():
            _run("rm", "-rf", "--one-file-system", str(self.workdir / "hosts"), check=False)
        STATE.unlink(missing_ok=True)
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    # -- using the hosts ---------------------------------------------------------------------------------------
    def ssh(self, name: str, command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        options = [f"-o{o}" for o in (*SSH_OPTIONS, "BatchMode=yes", "LogLevel=ERROR")]
        return _run("ssh", "-i", str(self.key), *options, f"root@{self.address(name)}", command, check=check)

    def read(self, name: str, path: str) -> str:
        return self.ssh(name, f"cat {path}").stdout

    def calls(self, name: str, tool: str | None = None) -> list[dict[str, Any]]:
        """The test doubles' call log on one host (optionally one tool's calls only)."""
        out = self.ssh(name, "cat /var/log/herd-doubles/calls.jsonl 2>/dev/null || true").stdout
        entries = [json.loads(line) for line in out.splitlines() if line.strip()]
        return [e for e in entries if tool is None or e["tool"] == tool]

    def test_vars(self, host: HostSpec) -> dict[str, Any]:
        """What the test inventory overrides: addresses, SSH, the test repositories instead of upstream's, the
        images kubeadm needs as archives (no registry here), and what a container is not (see
        docs/development/test-hosts.md)."""
        v = self.versions
        cp = next((h for h in self.hosts if h.group == "control_plane"), self.hosts[0])
        kubeadm_images = images.kubeadm_images()
        # Workers need the sandbox image only; control planes the static pods' too.
        archives = [str(i.archive) for i in kubeadm_images
                    if host.group == "control_plane" or i.reference == images.PAUSE_IMAGE]  # fmt: skip
        return {
            "ansible_host": self.address(host.name),
            "ansible_user": "root",
            "ansible_ssh_private_key_file": str(self.key),
            "ansible_ssh_common_args": " ".join(f"-o {o}" for o in SSH_OPTIONS),
            "ansible_python_interpreter": "/usr/bin/python3",
            "herd_node_ip": self.address(host.name),
            "herd_control_plane_endpoint": f"{self.address(cp.name)}:6443",
            "herd_kubernetes_version": v.kubernetes,
            "herd_kubeconfig_dest": str(self.kubeconfig),
            **repository_vars(self.repo_url),
            "nvidia_toolkit_version": v.nvidia_toolkit,
            "nvidia_pci_devices_dir": FAKE_PCI,
            "containerd_image_archives": archives,
            # No CAP_SYS_RESOURCE inside a test host (nor for root on this machine): runc may not lower a
            # process's oom_score_adj (kind sets the same for nested nodes).
            "containerd_restrict_oom_score_adj": True,
            # The kit's etcd pin, not kubeadm 1.36.3's default 3.6.8 (herd_local/images.py builds that image).
            "herd_etcd_image_tag": images.ETCD_IMAGE_TAG,
            # CoreDNS and kube-proxy are not built here (docs/development/test-hosts.md): no test resolves a
            # name or uses a Service.
            "herd_kubeadm_skip_phases": ["addon/coredns", "addon/kube-proxy"],
            # SystemVerification reads the kernel's config and wants cgroup v2; this machine is cgroup v1 and a
            # container has no kernel config: the one preflight check ignored.
            "herd_kubeadm_ignore_preflight_errors": ["SystemVerification"],
            "herd_kubelet_config": {"failCgroupV1": False},
            "verify_kubelet_delay": 2,
            **host.host_vars,
        }  # fmt: skip

    def _write_inventory(self) -> None:
        groups: dict[str, dict[str, Any]] = {"control_plane": {}, "gpu_nodes": {}, "cpu_nodes": {}}
        for host in self.hosts:
            groups[host.group][host.name] = self.test_vars(host)
        doc = {"all": {"children": {g: {"hosts": hosts} for g, hosts in groups.items()}}}
        inv = self.inventory.parent
        inv.mkdir(parents=True, exist_ok=True)
        shutil.copytree(REPO / "inventory" / "example" / "group_vars", inv / "group_vars", dirs_exist_ok=True)
        self.inventory.write_text(yaml.safe_dump(doc, sort_keys=False))

    def stop_host(self, name: str) -> None:
        """Cut a host's power: kill its container's init (by PID), so every process in it dies at once and the
        host is unreachable from then on, like a dead server."""
        leader = self._leader(name)
        if leader is not None:
            os.kill(leader, signal.SIGKILL)
        self._containers[name].wait(timeout=20)

    def _leader(self, name: str) -> int | None:
        """PID of the container's init: the first process below systemd-nspawn in another PID namespace."""
        proc = self._containers[name]
        own = os.readlink(f"/proc/{proc.pid}/ns/pid")
        queue = [proc.pid]
        while queue:
            pid = queue.pop(0)
            try:
                if pid != proc.pid and os.readlink(f"/proc/{pid}/ns/pid") != own:
                    return pid
                for task in Path(f"/proc/{pid}/task").iterdir():
                    queue.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                continue
        return None

    # -- the cluster the playbooks made ------------------------------------------------------------------
    def kubectl(
        self, *args: str, check: bool = True, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The pinned kubectl on this machine, with the admin kubeconfig control_plane.yml fetched."""
        kubectl = built_components("kubectl") / "kubectl"
        argv = [str(kubectl), f"--kubeconfig={self.kubeconfig}", "--request-timeout=20s", *args]
        return subprocess.run(argv, input=stdin, check=check, capture_output=True, text=True)

    def get(self, *args: str) -> dict[str, Any]:
        return json.loads(self.kubectl("get", *args, "-o", "json").stdout)

    @property
    def nodes(self) -> dict[str, dict[str, Any]]:
        """The Node objects as the real API server has them, by name: labels, taints, unschedulable, ready."""
        out = {}
        for node in self.get("nodes")["items"]:
            conditions = {c["type"]: c["status"] for c in node["status"].get("conditions", [])}
            out[node["metadata"]["name"]] = {
                "labels": node["metadata"].get("labels", {}),
                "taints": node["spec"].get("taints", []),
                "unschedulable": node["spec"].get("unschedulable", False),
                "ready": conditions.get("Ready") == "True",
                "node": node,
            }
        return out

    def settled_nodes(self, names: Iterable[str], timeout: float = 120) -> dict[str, dict[str, Any]]:
        """The nodes (as :attr:`nodes` has them) once each of ``names`` is registered, Ready, and free of the
        taints the node lifecycle controller manages (``node.kubernetes.io/not-ready`` and the like). It lifts
        those on its own period, after the node reports Ready: a claim about a node's own taints needs both, never
        the order of the two events."""
        wanted = set(names)
        deadline = time.monotonic() + timeout
        while True:
            nodes = self.nodes
            pending = {
                name: "not registered" if name not in nodes else "not Ready" if not nodes[name]["ready"]
                else "taints " + ", ".join(t["key"] for t in nodes[name]["taints"])
                for name in wanted
                if name not in nodes or not nodes[name]["ready"]
                or any(t["key"].startswith(LIFECYCLE_TAINT_PREFIX) for t in nodes[name]["taints"])
            }  # fmt: skip
            if not pending:
                return nodes
            if time.monotonic() > deadline:
                raise AssertionError(f"nodes not settled within {timeout:.0f} s: {pending}")
            time.sleep(2)


@contextmanager
def testbed(
    hosts: list[HostSpec], workdir: Path, net: int = 0, release: str = DEFAULT_RELEASE
) -> Iterator[Testbed]:
    with Testbed(hosts, workdir, net, release=release) as bed:
        yield bed
