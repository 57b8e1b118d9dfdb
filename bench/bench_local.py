"""The example sweep run locally as ml-jobs schedules it (as many at once as the declared resources fit on this
machine) against the same runs one after another. Prints both wall times and the speed-up.

    .venv/bin/python bench/bench_local.py     # needs the examples extra (scikit-learn); about half a minute
"""

from __future__ import annotations

import io
import tempfile
import time
from pathlib import Path

from rich.console import Console

from ml_jobs.local import run_local
from ml_jobs.spec import load_spec

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "digits-sweep.yaml"


def timed(parallelism: int | None) -> tuple[float, int, float]:
    exp = load_spec(EXAMPLE)
    with tempfile.TemporaryDirectory() as results:
        t0 = time.perf_counter()
        report = run_local(exp, results_dir=results, parallelism=parallelism, console=Console(file=io.StringIO()))
        wall = time.perf_counter() - t0
        if not report.ok:
            raise SystemExit(f"the example failed: {report.failed}")
        busy = sum(r.seconds or 0.0 for r in report.runs.values())
        return wall, report.plan.slots, busy


def main() -> None:
    exp = load_spec(EXAMPLE)
    scheduled, slots, busy = timed(None)
    sequential, _, _ = timed(1)
    print(f"example: {EXAMPLE.name}, {exp.runs} runs, {exp.resources.cpu} CPU / {exp.resources.memory} each")
    print(f"ml-jobs run --local ({slots} at once):  {scheduled:6.1f}s wall  (runs' own time summed: {busy:.1f}s)")
    print(f"one after another (--parallelism 1): {sequential:6.1f}s wall")
    print(f"speed-up: {sequential / scheduled:.2f}x")


if __name__ == "__main__":
    main()
