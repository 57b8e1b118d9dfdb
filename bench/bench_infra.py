"""Evaluation time of the Pulumi program under mocks for 1, 5 and 20 burst pools, side by side, with the ratios,
and how many resources each pool adds.

    .venv/bin/python bench/bench_infra.py            # about half a minute

Each size runs REPEATS times after one warm-up run (imports, pulumi-aws's schema loading); the median is shown.
This times the program and the mock engine together (what `herd-plan` and the tests pay), not a real `pulumi up`,
whose time is dominated by AWS and Helm.
"""

from __future__ import annotations

import copy
import statistics
import time
from pathlib import Path

from infra.plan import load_stack_file, run_plan

SIZES = (1, 5, 20)
REPEATS = 5
EXAMPLE = Path(__file__).resolve().parent.parent / "Pulumi.example.yaml"
NOW = 1795953600.0


def stack(pools: int) -> dict:
    """The example stack with ``pools`` burst pools, alternating GPU spot and CPU on-demand."""
    values = copy.deepcopy(load_stack_file(EXAMPLE))
    values["herd:pools"] = [
        {"name": f"gpu-{i}", "tier": "gpu", "instanceTypes": ["g5.xlarge", "g5.2xlarge"], "maxSize": 4}
        if i % 2 == 0
        else {
            "name": f"cpu-{i}",
            "tier": "high-cpu",
            "instanceTypes": ["c6i.4xlarge"],
            "maxSize": 4,
            "capacityType": "on-demand",
        }
        for i in range(pools)
    ]
    return values


def main() -> None:
    run_plan(stack(1), now=NOW)  # warm-up
    rows = []
    for n in SIZES:
        values = stack(n)
        times = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            plan = run_plan(values, now=NOW)
            times.append(time.perf_counter() - start)
        resources = sum(1 for r in plan.resources if r.custom)
        rows.append((n, statistics.median(times), min(times), resources))

    base_t, base_r = rows[0][1], rows[0][3]
    print(f"program evaluation under mocks, median of {REPEATS} (after a warm-up run)")
    print(f"{'pools':>5} {'median s':>9} {'min s':>7} {'resources':>9} {'time vs 1':>10} {'s/pool':>7}")
    for n, median, fastest, resources in rows:
        print(f"{n:>5} {median:>9.3f} {fastest:>7.3f} {resources:>9} {median / base_t:>9.2f}x {median / n:>7.3f}")
    per_pool = (rows[-1][3] - base_r) / (rows[-1][0] - rows[0][0])
    marginal = (rows[-1][1] - base_t) / (rows[-1][0] - rows[0][0])
    print(f"resources per pool: {per_pool:g} (role, policy, instance profile, launch template, ASG)")
    print(
        f"marginal time per pool: {marginal * 1000:.0f} ms; fixed cost (network, VPN, add-ons): "
        f"{(base_t - marginal) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
