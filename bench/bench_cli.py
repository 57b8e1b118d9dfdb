"""``ml-jobs --help`` start-up time, against a bare interpreter and against what eager imports would cost.

.venv/bin/python bench/bench_cli.py
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPEAT = 10
BIN = Path(sys.executable).parent


def median_seconds(argv: list[str]) -> float:
    times = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ml_jobs = shutil.which("ml-jobs", path=str(BIN)) or "ml-jobs"
    python = sys.executable
    rows = [
        ("python -c pass (interpreter alone)", [python, "-c", "pass"]),
        ("ml-jobs --help", [ml_jobs, "--help"]),
        ("python -c 'import ml_jobs.spec' (pydantic)", [python, "-c", "import ml_jobs.spec"]),
        ("python -c 'import kubernetes' (the client)", [python, "-c", "import kubernetes"]),
        ("python -c 'import kubernetes_validate'", [python, "-c", "import kubernetes_validate"]),
    ]
    results = {label: median_seconds(argv) for label, argv in rows}
    base = results["python -c pass (interpreter alone)"]
    help_s = results["ml-jobs --help"]
    print(f"median of {REPEAT} runs each")
    for label, seconds in results.items():
        print(f"  {label:<45} {seconds * 1000:7.0f} ms")
    eager = help_s + sum(results[k] - base for k in list(results)[2:])
    print(f"ml-jobs --help: {help_s * 1000:.0f} ms, {help_s / base:.1f}x a bare interpreter;")
    print(
        f"importing spec, client and validator at start-up would make it about {eager * 1000:.0f} ms "
        f"({eager / help_s:.1f}x)"
    )


if __name__ == "__main__":
    main()
