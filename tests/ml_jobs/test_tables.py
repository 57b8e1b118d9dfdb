"""Tables of runs at 10,000 rows: the rich table up to a screenful, then the first and last rows on a terminal,
and a plain table of every row with --all or when piped (ml_jobs._tables; `sweep`, `status --all`, `results`)."""

from __future__ import annotations

import datetime as dt
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from ml_jobs import _cli_cluster
from ml_jobs._tables import SHORT_ROWS, Column, form, head_and_tail, write_plain
from ml_jobs.kube.status import RunStatus, SweepStatus
from ml_jobs.results import ExperimentResults, RunResult
from ml_jobs.spec import Objective

REPO = Path(__file__).resolve().parents[2]
BIG = """\
name: big-sweep
image: python:3.11
command: [python, train.py]
sweep:
  product:
    - grid: {hidden: [32, 64, 96, 128, 256], alpha: [1e-4, 1e-3, 1e-2, 1e-1]}
    - random: {seed: 3, count: 500, params: {lr: {loguniform: [1e-5, 1e-1]}}}
"""
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.mark.parametrize(
    ("rows", "terminal", "show_all", "expected"),
    [
        (SHORT_ROWS, True, False, "rich"),
        (SHORT_ROWS, False, True, "rich"),
        (SHORT_ROWS + 1, True, False, "short"),
        (SHORT_ROWS + 1, True, True, "plain"),
        (SHORT_ROWS + 1, False, False, "plain"),
    ],
)
def test_the_form_follows_the_row_count_the_terminal_and_all(rows, terminal, show_all, expected):
    assert form(rows, terminal=terminal, show_all=show_all) == expected


def test_head_and_tail():
    assert head_and_tail(10_000) == (range(10), range(9990, 10_000))
    assert head_and_tail(15) == (range(15), range(0))


def test_plain_tables_align_columns_and_write_every_row():
    out = io.StringIO()
    write_plain([Column("run"), Column("lr", right=True)], [["run-00000", "0.1"], ["run-00001", "1e-05"]], out)
    assert out.getvalue() == "run           lr\nrun-00000    0.1\nrun-00001  1e-05\n"


def ml_jobs(*args: str, terminal: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "120", "TTY_COMPATIBLE": "1" if terminal else "0"}
    return subprocess.run(
        [sys.executable, "-m", "ml_jobs.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
        check=False,
    )


def test_a_10000_run_sweep_on_a_terminal_shows_its_first_and_last_runs(tmp_path):
    spec = tmp_path / "big.yaml"
    spec.write_text(BIG)
    done = ml_jobs("sweep", str(spec), terminal=True)
    assert done.returncode == 0, done.stderr
    text = ANSI.sub("", done.stdout)
    assert "big-sweep: 10,000 run(s)" in text
    shown = re.findall(r"run-\d{5}", text)
    assert shown == [f"run-{i:05d}" for i in [*range(10), *range(9990, 10_000)]]
    assert text.rstrip().endswith("9,980 runs not shown (--all: every run)")


@pytest.mark.parametrize("args", [(), ("--all",)])
def test_a_10000_run_sweep_piped_or_with_all_is_a_plain_table_of_every_run(tmp_path, args):
    spec = tmp_path / "big.yaml"
    spec.write_text(BIG)
    done = ml_jobs("sweep", str(spec), *args, terminal="--all" in args)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 10_001 and "\x1b" not in done.stdout
    assert lines[0].split() == ["run", "hidden", "alpha", "lr"]
    assert lines[1].split()[:3] == ["run-00000", "32", "0.0001"]
    assert lines[-1].split()[:3] == ["run-09999", "256", "0.1"]
    assert len({len(line.rstrip()) for line in lines[1:]}) <= 2  # aligned: lr is the only ragged column


def test_a_small_sweep_keeps_its_one_table():
    done = ml_jobs("sweep", str(REPO / "examples" / "digits-sweep.yaml"))
    assert "digits-sweep: 12 run(s)" in done.stdout and "┃ run" in done.stdout
    assert len(re.findall(r"run-\d{5}", done.stdout)) == 12


def status_of(runs: int) -> SweepStatus:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return SweepStatus(
        "big-sweep",
        1,
        "big-sweep",
        "vision",
        "running",
        [
            RunStatus(
                index=i,
                state="succeeded" if i % 2 else "running",
                attempts=1,
                node="gpu-1",
                started=start,
                finished=start + dt.timedelta(seconds=90) if i % 2 else None,
                exit_code=0 if i % 2 else None,
                metrics={"acc": 0.5} if i % 2 else None,
            )
            for i in range(runs)
        ],
        objective={"metric": "acc"},
    )


def printed(status: SweepStatus, show_all: bool, capsys: pytest.CaptureFixture[str]) -> str:
    console = Console(file=io.StringIO(), width=120, highlight=False)
    _cli_cluster._print_status(console, status, show_all=show_all)
    return console.file.getvalue() + capsys.readouterr().out  # type: ignore[attr-defined]


def test_status_all_of_10000_runs_is_the_summary_then_a_plain_table(capsys):
    text = printed(status_of(10_000), True, capsys)
    lines = text.splitlines()
    assert lines[1] == "10000 runs: 5000 running, 5000 succeeded"
    assert lines[2].split() == ["run", "state", "attempts", "node", "duration", "exit", "acc"]
    assert len(lines) == 3 + 10_000
    assert lines[3].split()[:2] == ["run-00000", "running"] and lines[-1].split() == [
        "run-09999",
        "succeeded",
        "1",
        "gpu-1",
        "1m30s",
        "0",
        "0.5",
    ]


def test_status_without_all_keeps_its_short_form(capsys):
    text = printed(status_of(10_000), False, capsys)
    assert len(re.findall(r"run-\d{5}", text)) == _cli_cluster.STATUS_ROWS
    assert "… 9970 more runs (--all to list every run)" in text


def test_status_all_of_a_few_runs_is_the_rich_table(capsys):
    text = printed(status_of(12), True, capsys)
    assert len(re.findall(r"run-\d{5}", text)) == 12 and "more runs" not in text


def results_of(runs: int) -> ExperimentResults:
    rows = [
        RunResult(
            index=i, run=f"run-{i:05d}", path=Path("/r"), params={"lr": i / 10}, metrics={"acc": (i % 1000) / 1000}
        )
        for i in range(runs)
    ]
    return ExperimentResults("big-sweep", 1, Objective(metric="acc"), rows, "local runs/big-sweep", ["lr"], {})


def test_results_of_10000_runs_piped_is_a_plain_ranked_table(capsys, monkeypatch):
    monkeypatch.setenv("TTY_COMPATIBLE", "0")
    _cli_cluster._print_results(results_of(10_000), csv=False, limit=None, show_all=False)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["#", "run", "lr", "acc", "↑"]
    assert len(lines) == 10_001 and lines[1].split() == ["1", "run-00999", "99.9", "0.999"]


def test_results_of_10000_runs_on_a_terminal_are_the_best_20(capsys, monkeypatch):
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    _cli_cluster._print_results(results_of(10_000), csv=False, limit=None, show_all=False)
    text = ANSI.sub("", capsys.readouterr().out)
    assert len(re.findall(r"run-\d{5}", text)) == _cli_cluster.RESULTS_ROWS
    assert "best 20 of 10000 runs" in text and "--limit N for more, --all for all 10,000" in text


def test_status_of_one_run_says_run(capsys):
    assert printed(status_of(1), False, capsys).splitlines()[1] == "1 run: 1 running"


def test_why_pending_lines_end_without_trailing_spaces(capsys):
    # GIVEN causes of different lengths and counts of different widths (the old grid padded every cell)
    from ml_jobs.kube.pending import Cause

    status = status_of(12)
    status.causes = [Cause("8/9 nodes are cordoned; uncordoned, cpu-01 would take it", 11), Cause("starting", 1)]
    text = printed(status, False, capsys)
    lines = text.splitlines()
    at = lines.index("why pending:")
    # THEN each cause is one line, its count right-aligned, and no line of the head ends in a space
    assert lines[at + 1 : at + 3] == [
        "11 runs 8/9 nodes are cordoned; uncordoned, cpu-01 would take it",
        "  1 run starting",
    ]
    assert [line for line in lines[: at + 3] if line != line.rstrip()] == []
