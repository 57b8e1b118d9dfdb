"""Benchmark: what playbooks/site.yml costs to converge booted test hosts into a real Kubernetes cluster — 1 host
vs 4, first run vs the idempotent second run, with and without SSH pipelining. Wall time, and the controller's
side per host: tasks run and SSH round trips. Ratios are measured side by side in one run.

    .venv/bin/python bench/bench_playbooks.py                      # as root: full matrix, ~22 min on 2 cores
    .venv/bin/python bench/bench_playbooks.py --quick              # pipelining on only, about half that
    .venv/bin/python bench/bench_playbooks.py --quick --release trixie

Each testbed first waits until no other testbed runs on the machine (testbed.py's lock); the wait is printed and
is not in any figure.

1 host is the control plane alone; 4 hosts are the control plane and three workers (two with fake GPUs), which
join with the same play. The hosts are systemd-nspawn containers (tests/playbooks/testbed.py) whose Debian packages
come through a proxy from the mirror. The stack is the real one: the roles install the pinned upstream kubeadm,
kubelet and kubectl and containerd with runc from the test repositories, containerd imports kubeadm's images from
archives (no registry here), the real ``kubeadm init`` brings up the control plane's static pods and the real
``kubeadm join`` the workers. What stands in: the pod network (the CNI bridge plugin instead of Calico) and the
NVIDIA driver and container toolkit (test doubles). All hosts and the controller share this machine's CPUs.

What is counted, per run and per host:

- **tasks**: ansible-runner's result events for the host — ``runner_on_ok`` (changed or not: there is no separate
  changed event), ``runner_on_failed`` and ``runner_on_unreachable``: tasks (and handlers, and fact gathering) that
  ran for the host. A loop is one task (each item makes its own round trips). ``runner_on_skipped`` counts apart
  (``skipped``): a skipped task is decided on the controller and costs the host nothing. A task delegated to
  another host counts for the host it runs for.
- **ssh**: SSH round trips — invocations of the ssh, sftp and scp clients. Ansible's ``ansible_ssh_executable``,
  ``ansible_sftp_executable`` and ``ansible_scp_executable`` point (as extra variables) at wrapper scripts written
  to the bench's temporary directory; each appends one line naming the address it was called for to a log and
  execs the real client. Each invocation is one remote command (or one file transfer) over the host's multiplexed
  connection (ansible.cfg: ControlMaster, ControlPersist=60s), so it counts what a run makes the controller and
  the network do per task. Counted for the host the client reached (a delegated task's for the delegate). ssh's
  own control commands (``-O check``/``stop``) never reach a host and are not counted.
- **controller CPU**: the CPU time of ansible-playbook, its workers and the ssh clients (the run's reaped child
  processes, ``getrusage(RUSAGE_CHILDREN)`` around the run). Not counted: the hosts' own work, and ssh's
  background multiplexing masters (they detach, so nobody here reaps them).
"""

from __future__ import annotations

import argparse
import fcntl
import os
import re
import resource
import shlex
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from herd_ops import RunResult, run_playbook
from tests.playbooks.testbed import (
    DEFAULT_RELEASE,
    LOCK,
    RELEASES,
    HostSpec,
    Testbed,
    why_no_cluster,
    why_not_available,
)

H100 = ("NVIDIA H100 80GB HBM3", 81559)
SITES = {
    1: [HostSpec("cp1", "control_plane")],
    4: [
        HostSpec("cp1", "control_plane"),
        HostSpec("gpu1", "gpu_nodes", gpus=(H100, H100)),
        HostSpec("gpu2", "gpu_nodes", gpus=(H100,)),
        HostSpec("cpu1", "cpu_nodes"),
    ],
}
NET = 1
CLIENTS = ("ssh", "sftp", "scp")
# One line per invocation: the client and the first argument that names a test host (user@, [..] and :path
# included); ssh's -O control commands are marked and not counted.
WRAPPER = """#!/bin/sh
# herd bench: log which host this {client} invocation reaches, then run the real {client}.
kind={client} host=
for arg; do
    case $arg in
        -O) kind={client}-control ;;
        *{prefix}.*) [ -n "$host" ] || host=$arg ;;
    esac
done
echo "$kind $host" >> {log}
exec {real} "$@"
"""


@dataclass
class Run:
    """One site.yml run: wall and controller CPU seconds; per host, tasks run, tasks skipped, SSH round trips."""

    wall: float
    cpu: float
    tasks: Counter[str]
    skipped: Counter[str]
    ssh: Counter[str]


def _wrappers(tmp: Path, prefix: str, log: Path) -> dict[str, str]:
    """Write the counting wrappers (logging to ``log``); return the extra variables that make Ansible use them."""
    extravars = {}
    for client in CLIENTS:
        real = shutil.which(client)
        if real is None:
            raise SystemExit(f"{client} is not installed")
        path = tmp / f"counting-{client}"
        text = WRAPPER.format(client=client, prefix=prefix, log=shlex.quote(str(log)), real=shlex.quote(real))
        path.write_text(text)
        path.chmod(0o755)
        extravars[f"ansible_{client}_executable"] = str(path)
    return extravars


def _round_trips(lines: list[str], bed: Testbed) -> Counter[str]:
    by_address = {bed.address(h.name): h.name for h in bed.hosts}
    pattern = re.compile(re.escape(bed.prefix) + r"\.\d+\b")
    counts: Counter[str] = Counter()
    for line in lines:
        kind, _, target = line.partition(" ")
        if kind.endswith("-control"):
            continue
        match = pattern.search(target)
        counts[by_address.get(match.group(), "?") if match else "?"] += 1
    return counts


def _log_lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def site_run(bed: Testbed, pipelining: bool, extravars: dict[str, str], log: Path) -> tuple[Run, RunResult]:
    tasks: Counter[str] = Counter()
    skipped: Counter[str] = Counter()

    def on_result(host: str, task: str, outcome: str, message: str) -> None:
        (skipped if outcome == "skipped" else tasks)[host] += 1

    logged = len(_log_lines(log))
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = run_playbook("site", bed.inventory, pipelining=pipelining, extravars=extravars, on_result=on_result)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Run(wall, cpu, tasks, skipped, _round_trips(_log_lines(log)[logged:], bed)), result


def wait_for_testbed() -> float:
    """Wait until no other testbed runs on this machine (testbed.py's lock); return the seconds waited.

    Testbed takes the lock itself right after: another testbed may slip in between, which only adds to the boot
    time reported, never to a run's figures."""
    start = time.perf_counter()
    fd = os.open(LOCK, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    finally:
        os.close(fd)  # closing releases it
    return time.perf_counter() - start


def converge(hosts: list[HostSpec], pipelining: bool, release: str) -> tuple[Run, Run]:
    """Boot fresh hosts; measure site.yml's first run and its second run (which must change nothing)."""
    waited = wait_for_testbed()
    start = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="herd-bench-") as tmp,
        Testbed(hosts, Path(tmp), net=NET, release=release) as bed,
    ):
        log = Path(tmp) / "ssh-clients.log"
        extravars = _wrappers(Path(tmp), bed.prefix, log)
        booted = time.perf_counter() - start
        runs = []
        for attempt in ("first", "second"):
            run, result = site_run(bed, pipelining, extravars, log)
            runs.append(run)
            if not result.ok:
                failed = {h.name: f"{h.failed_task}: {h.message}" for h in result.failed_hosts}
                raise SystemExit(f"{attempt} run failed: {failed}")
            if attempt == "second" and result.changed:
                raise SystemExit(f"second run changed {result.changed} things: not idempotent")
    down = time.perf_counter() - start - booted - sum(r.wall for r in runs)
    print(f"  {len(hosts)} host(s): waited {waited:.0f}s for another testbed, booted in {booted:.0f}s, "
          f"tore down in {down:.0f}s; load average {os.getloadavg()[1]:.1f} (5 min)", flush=True)  # fmt: skip
    return runs[0], runs[1]


def _per_host(run: Run, hosts: list[HostSpec]) -> str:
    parts = [f"{h.name} {run.tasks[h.name]}/{run.skipped[h.name]}/{run.ssh[h.name]}" for h in hosts]
    if run.ssh["?"]:
        parts.append(f"(ssh to no test host: {run.ssh['?']})")
    return "  ".join(parts)


def report(rows: dict[tuple[int, bool], tuple[Run, Run]], modes: list[bool], release: str) -> None:
    order = sorted(rows, key=lambda key: (not key[1], key[0]))
    print(f"\nsite.yml on Debian {release} test hosts: wall time; the controller's side, totals over the hosts")
    print(f"{'hosts':>5} {'pipelining':>10} {'run':>6} {'wall s':>7} {'tasks':>6} {'skipped':>7} {'ssh':>6} "
          f"{'ssh/task':>8} {'ctl CPU s':>9} {'tasks/host':>10} {'ssh/host':>8}")  # fmt: skip
    for size, pipelining in order:
        for label, run in zip(("first", "second"), rows[(size, pipelining)], strict=True):
            tasks, ssh = sum(run.tasks.values()), sum(run.ssh.values())
            print(f"{size:>5} {'on' if pipelining else 'off':>10} {label:>6} {run.wall:7.1f} {tasks:>6} "
                  f"{sum(run.skipped.values()):>7} {ssh:>6} {ssh / tasks:8.2f} {run.cpu:9.1f} "
                  f"{tasks / size:10.1f} {ssh / size:8.1f}")  # fmt: skip
    print("\nper host: tasks run / skipped / ssh round trips")
    for size, pipelining in order:
        for label, run in zip(("first", "second"), rows[(size, pipelining)], strict=True):
            mode = "on " if pipelining else "off"
            print(f"  {size} host(s), pipelining {mode}, {label:>6}: {_per_host(run, SITES[size])}")
    print("\nratios")
    for size, pipelining in order:
        first, second = rows[(size, pipelining)]
        print(f"  first / second, {size} host(s), pipelining {'on' if pipelining else 'off'}: "
              f"wall {first.wall / second.wall:.2f}x")  # fmt: skip
    for pipelining in modes:
        (f1, s1), (f4, s4) = rows[(1, pipelining)], rows[(4, pipelining)]
        label = "on" if pipelining else "off"
        print(f"  4 hosts / 1 host, pipelining {label}: wall {f4.wall / f1.wall:.2f}x first, "
              f"{s4.wall / s1.wall:.2f}x second; ssh {sum(f4.ssh.values()) / sum(f1.ssh.values()):.2f}x first, "
              f"{sum(s4.ssh.values()) / sum(s1.ssh.values()):.2f}x second")  # fmt: skip
    if len(modes) == 2:
        for size in (1, 4):
            (fon, son), (foff, soff) = rows[(size, True)], rows[(size, False)]
            print(f"  pipelining off / on, {size} host(s): wall {foff.wall / fon.wall:.2f}x first, "
                  f"{soff.wall / son.wall:.2f}x second; ssh {sum(foff.ssh.values()) / sum(fon.ssh.values()):.2f}x "
                  f"first, {sum(soff.ssh.values()) / sum(son.ssh.values()):.2f}x second")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--quick", action="store_true", help="pipelining on only")
    parser.add_argument("--release", choices=RELEASES, default=DEFAULT_RELEASE, help="the test hosts' Debian")
    args = parser.parse_args()
    reason = why_not_available(args.release) or why_no_cluster()
    if reason:
        raise SystemExit(f"cannot boot test hosts: {reason}")
    modes = [True] if args.quick else [True, False]
    rows: dict[tuple[int, bool], tuple[Run, Run]] = {}
    start = time.perf_counter()
    for pipelining in modes:
        for size in (1, 4):
            rows[(size, pipelining)] = first, second = converge(SITES[size], pipelining, args.release)
            print(f"  measured {size} host(s), pipelining {'on ' if pipelining else 'off'}: "
                  f"first {first.wall:6.1f}s  second {second.wall:6.1f}s", flush=True)  # fmt: skip
    report(rows, modes, args.release)
    print(f"\nbench wall time {(time.perf_counter() - start) / 60:.1f} min (waits for other testbeds included)")


if __name__ == "__main__":
    main()
