"""The testbed itself: hosts boot with their own addresses and sshd, and everything is torn down on failure."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from herd_local.real_node import CGROUP_ROOT, cgroup_hierarchies
from tests.playbooks.testbed import (
    CGROUP_PARENT,
    RELEASES,
    STATE,
    HostSpec,
    Testbed,
    why_not_available,
)

pytestmark = pytest.mark.hosts


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


@pytest.mark.parametrize("release", RELEASES)
def test_teardown_even_when_the_test_fails(release: str, tmp_path: Path) -> None:
    if (reason := why_not_available(release)) is not None:
        pytest.skip(reason)
    bed = Testbed([HostSpec("t1", "cpu_nodes"), HostSpec("t2", "cpu_nodes")], tmp_path, net=2, release=release)
    with pytest.raises(RuntimeError, match="the test failed"), bed:
        # GIVEN two booted hosts of the release that see each other and nothing else
        assert bed.ssh("t1", "systemctl is-system-running --wait || true").returncode == 0
        assert f"VERSION_CODENAME={release}" in bed.ssh("t1", "cat /etc/os-release").stdout
        assert bed.ssh("t1", "ip -4 -o addr show host0").stdout.split()[3] == f"{bed.address('t1')}/24"
        reach_t2 = f"python3 -c 'import socket; socket.create_connection((\"{bed.address('t2')}\", 22), 2)'"
        assert bed.ssh("t1", reach_t2).returncode == 0
        assert bed.ssh("t1", "ip route show default").stdout.strip() == "", "no route out of the test network"
        assert bed.ssh("t1", "systemd-detect-virt").stdout.strip() == "systemd-nspawn"
        # ... and no capability that reaches the host.
        caps = bed.ssh("t1", "grep CapBnd /proc/1/status").stdout.split()[1]
        assert not int(caps, 16) & (1 << 16), "CAP_SYS_MODULE"
        assert not int(caps, 16) & (1 << 25), "CAP_SYS_TIME"
        # What a kubelet needs beyond nspawn's defaults (what kind gives its nodes): the host's own cgroups,
        # writable, as the root of its cgroup namespace, and a /dev/kmsg.
        assert bed.ssh("t1", "grep memory /proc/self/cgroup").stdout.strip().endswith(":/system.slice/ssh.service")
        assert (CGROUP_ROOT / "memory" / CGROUP_PARENT / "t1" / "system.slice" / "ssh.service").is_dir()
        probe = "mkdir /sys/fs/cgroup/memory/probe && rmdir /sys/fs/cgroup/memory/probe"
        assert bed.ssh("t1", probe).returncode == 0
        assert bed.ssh("t1", "test -e /dev/kmsg").returncode == 0
        assert bed.ssh("t1", "systemctl is-system-running").stdout.strip() in {"running", "degraded"}
        pids = [p.pid for p in bed._containers.values()] + [bed._proxy.pid]
        mounts = list(bed._mounts)
        # WHEN the test fails
        raise RuntimeError("the test failed")
    # THEN containers, proxy, overlays and the bridge are gone
    assert not any(alive(pid) for pid in pids)
    for mount in mounts:
        assert subprocess.run(["mountpoint", "-q", str(mount)], check=False).returncode != 0
    assert subprocess.run(["ip", "link", "show", bed.bridge], capture_output=True, check=False).returncode != 0
    assert not STATE.exists()
    assert not any((h / CGROUP_PARENT).exists() for h in cgroup_hierarchies()), "a host's cgroup is left"
