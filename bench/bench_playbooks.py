"""Benchmark: wall time for playbooks/site.yml to converge booted test hosts — 1 host vs 4, first run vs the
idempotent second run, with and without SSH pipelining. Ratios are measured side by side in one run.

    sudo .venv/bin/python bench/bench_playbooks.py            # full matrix, about 10 minutes on 2 cores
    sudo .venv/bin/python bench/bench_playbooks.py --quick    # pipelining on only, about half that

1 host is the control plane alone; 4 hosts are the control plane and three workers (two with fake GPUs), which
join with the same play. The hosts are systemd-nspawn containers (tests/playbooks/testbed.py) whose Debian
packages come through a proxy from the mirror, and whose kubeadm/kubelet/NVIDIA stack is the tests' doubles, so
the numbers measure Ansible's and apt's work, not a real kubeadm's (which adds image pulls and a control plane).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from herd_ops import run_playbook
from tests.playbooks.testbed import HostSpec, Testbed, why_not_available

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


def converge(hosts: list[HostSpec], pipelining: bool) -> tuple[float, float]:
    """Boot fresh hosts; time site.yml's first run and its second run (which must change nothing)."""
    with tempfile.TemporaryDirectory(prefix="herd-bench-") as tmp, Testbed(hosts, Path(tmp), net=1) as bed:
        times = []
        for attempt in ("first", "second"):
            start = time.perf_counter()
            result = run_playbook("site", bed.inventory, pipelining=pipelining)
            times.append(time.perf_counter() - start)
            if not result.ok:
                failed = {h.name: f"{h.failed_task}: {h.message}" for h in result.failed_hosts}
                raise SystemExit(f"{attempt} run failed: {failed}")
            if attempt == "second" and result.changed:
                raise SystemExit(f"second run changed {result.changed} things: not idempotent")
        return times[0], times[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="pipelining on only")
    args = parser.parse_args()
    reason = why_not_available()
    if reason:
        raise SystemExit(f"cannot boot test hosts: {reason}")
    modes = [True] if args.quick else [True, False]
    rows: dict[tuple[int, bool], tuple[float, float]] = {}
    for pipelining in modes:
        for size in (1, 4):
            rows[(size, pipelining)] = converge(SITES[size], pipelining)
            first, second = rows[(size, pipelining)]
            print(f"  measured {size} host(s), pipelining {'on ' if pipelining else 'off'}: "
                  f"first {first:6.1f}s  second {second:6.1f}s", flush=True)  # fmt: skip

    print("\nsite.yml wall time (seconds)")
    print(f"{'hosts':>5} {'pipelining':>10} {'first':>8} {'second':>8} {'first/second':>13}")
    for (size, pipelining), (first, second) in sorted(rows.items(), key=lambda kv: (not kv[0][1], kv[0][0])):
        print(f"{size:>5} {'on' if pipelining else 'off':>10} {first:8.1f} {second:8.1f} {first / second:13.2f}")
    print("\nratios")
    for pipelining in modes:
        (f1, s1), (f4, s4) = rows[(1, pipelining)], rows[(4, pipelining)]
        label = "on" if pipelining else "off"
        print(f"  4 hosts / 1 host, pipelining {label}: first run {f4 / f1:.2f}x, second run {s4 / s1:.2f}x")
    if not args.quick:
        for size in (1, 4):
            (fon, son), (foff, soff) = rows[(size, True)], rows[(size, False)]
            print(
                f"  pipelining off / on, {size} host(s): first run {foff / fon:.2f}x, second run {soff / son:.2f}x"
            )


if __name__ == "__main__":
    main()
