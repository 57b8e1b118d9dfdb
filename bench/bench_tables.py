"""Tables of a 10,000-run sweep: `ml-jobs sweep` and `ml-jobs status --all`, the rich table of every row against
what the commands print now (the first and last rows on a terminal; a plain table of every row with --all or
piped). Both sides are measured in this one process on the same data, then the commands end to end.

    .venv/bin/python bench/bench_tables.py            # about half a minute, most of it the rich tables

The status side needs no cluster: a SweepStatus of 10,000 runs (states, nodes, durations, metrics) is built
here, as `sweep_status` returns it, and printed by the command's own functions.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import os
import pty
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ml_jobs import _cli_cluster, _cli_local, _tables, layout
from ml_jobs.kube.status import RunStatus, SweepStatus
from ml_jobs.spec import load_spec

RUNS = 10_000
REPEAT = 3
WIDTH = 120
SPEC = """\
name: bench-tables
image: registry.example.com/team/train:1.0
command: [python, train.py]
sweep:
  product:
    - grid: {hidden: [32, 64, 96, 128, 256], alpha: [1e-4, 1e-3, 1e-2, 1e-1]}
    - random: {seed: 3, count: 500, params: {lr: {loguniform: [1e-5, 1e-1]}}}
"""
BIN = Path(sys.executable).parent


def best_of(fn: Callable[[], object]) -> float:
    times = []
    for _ in range(REPEAT):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def terminal() -> Console:
    return Console(file=io.StringIO(), width=WIDTH, force_terminal=True, highlight=False)


def sweep_rich_table(path: Path) -> None:
    """What `ml-jobs sweep` printed before: one rich table of every run."""
    exp = load_spec(path)
    names = exp.sweep.names()
    table = Table(title=f"{exp.name}: {exp.runs} run(s)", header_style="bold")
    table.add_column("run")
    for name in names:
        table.add_column(name, justify="right")
    for i in range(exp.runs):
        params = exp.sweep.params(i)
        table.add_row(layout.run_name(i), *(str(params[n]) for n in names))
    terminal().print(table)


def sweep_plain(path: Path) -> None:
    """What `ml-jobs sweep --all` (or piped) prints now: the plain table of every run."""
    exp = load_spec(path)
    columns, row = _cli_local.sweep_table(exp)
    _tables.write_plain(columns, (row(i) for i in range(exp.runs)), io.StringIO())


def big_status() -> SweepStatus:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    states = ["succeeded"] * 6 + ["running", "pending", "failed", "retrying"]
    runs = [
        RunStatus(
            index=i,
            state=states[i % len(states)],
            attempts=1 + i % 3,
            node=f"gpu-node-{i % 40:02d}",
            started=start,
            finished=start + dt.timedelta(seconds=60 + i % 900) if i % 10 < 6 else None,
            exit_code=0 if i % 10 < 6 else None,
            metrics={"val_accuracy": 0.9 + (i % 97) / 1000} if i % 10 < 6 else None,
        )
        for i in range(RUNS)
    ]
    return SweepStatus(
        "bench-tables", 1, "bench-tables", "vision", "running", runs, objective={"metric": "val_accuracy"}
    )


def status_rich_table(status: SweepStatus) -> None:
    """What `ml-jobs status --all` printed before: one rich table of every run."""
    terminal().print(_cli_cluster._status_view(status, limit=None))


def status_plain(status: SweepStatus) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        _cli_cluster._print_status(terminal(), status, show_all=True)


def status_short(status: SweepStatus) -> None:
    _cli_cluster._print_status(terminal(), status, show_all=False)


def on_a_terminal(argv: list[str]) -> float:
    """Wall time of a command whose stdout is a pseudo-terminal (as in a shell), output read and dropped."""
    t0 = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:  # the child: the command, on the terminal
        os.environ["COLUMNS"] = str(WIDTH)
        os.execv(argv[0], argv)
    with contextlib.suppress(OSError):
        while os.read(fd, 65536):
            pass
    os.waitpid(pid, 0)
    return time.perf_counter() - t0


def piped(argv: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench-tables.yaml"
        path.write_text(SPEC)
        assert load_spec(path).runs == RUNS
        status = big_status()
        print(f"{RUNS:,} runs; best of {REPEAT}, in this process, printed to a {WIDTH}-column terminal")
        print(f"  {'':<34} {'rich table':>11} {'now':>9} {'ratio':>7}")
        cases = [
            ("sweep, every run (--all or piped)", sweep_rich_table, sweep_plain, path),
            ("status --all", status_rich_table, status_plain, status),
        ]
        for label, before, after, arg in cases:
            old = best_of(lambda b=before, a=arg: b(a))  # type: ignore[misc]
            new = best_of(lambda f=after, a=arg: f(a))  # type: ignore[misc]
            print(f"  {label:<34} {old:>10.2f}s {new:>8.3f}s {old / new:>6.0f}x")
        print(f"  {'status (30 runs, unchanged)':<34} {'':>11} {best_of(lambda: status_short(status)):>8.3f}s")

        ml_jobs = str(BIN / "ml-jobs")
        print("the command end to end (start-up included), median of 5:")
        for label, measure, argv in [
            ("ml-jobs sweep SPEC, on a terminal", on_a_terminal, [ml_jobs, "sweep", str(path)]),
            ("ml-jobs sweep SPEC --all, on a terminal", on_a_terminal, [ml_jobs, "sweep", str(path), "--all"]),
            ("ml-jobs sweep SPEC | ...", piped, [ml_jobs, "sweep", str(path)]),
        ]:
            seconds = statistics.median(measure(argv) for _ in range(5))
            print(f"  {label:<44} {seconds:6.2f}s")


if __name__ == "__main__":
    main()
