"""The run's metrics in its container's termination message: the format (``layout``), and the entry shim — the
copy a pod runs, written out of the rendered ConfigMap — as a real process writing it after the command exits.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from rich.console import Console

from ml_jobs import layout
from ml_jobs.local import SUCCEEDED, run_local
from ml_jobs.render import render
from ml_jobs.spec import Experiment

LIMIT = layout.TERMINATION_MESSAGE_LIMIT


# ------------------------------------------------------------------------------------------------- the format


def test_compact_json_with_the_objective_first() -> None:
    metrics = {"loss": 0.25, "epochs": 30, "accuracy": 0.97, "curve": [0.5, 0.9]}
    message = layout.termination_message(metrics, "accuracy")
    assert message == '{"accuracy":0.97,"loss":0.25,"epochs":30,"curve":[0.5,0.9]}'
    assert layout.parse_termination_message(message) == metrics
    assert layout.termination_message(metrics, None) == json.dumps(metrics, separators=(",", ":"))
    assert layout.termination_message(metrics, "not-reported").startswith('{"loss"')


def test_too_much_is_cut_by_leaving_out_keys_never_into_invalid_json() -> None:
    metrics = {f"layer_{i:03d}_grad_norm": i / 7 for i in range(400)}  # ~11 KiB
    metrics["history"] = list(range(2000))  # one value alone larger than the limit
    metrics["val_accuracy"] = 0.9123
    message = layout.termination_message(metrics, "val_accuracy")
    assert message is not None and len(message.encode()) <= LIMIT
    kept = json.loads(message)
    assert next(iter(kept)) == "val_accuracy"
    assert "history" not in kept and all(kept[k] == metrics[k] for k in kept)
    assert len(kept) > 100  # as many as fit, not just the objective
    # A key that does not fit does not stop smaller ones after it from being kept.
    assert layout.termination_message({"big": "x" * LIMIT, "small": 1}) == '{"small":1}'
    assert layout.termination_message({"big": "x" * LIMIT}) is None


def test_the_limit_is_in_bytes_and_exact() -> None:
    fixed = len('{"objective":1,"k":""}')
    fits = "x" * (LIMIT - fixed)
    message = layout.termination_message({"k": fits, "objective": 1}, "objective")
    assert message is not None and len(message.encode()) == LIMIT
    assert json.loads(message) == {"objective": 1, "k": fits}
    assert layout.termination_message({"k": fits + "x", "objective": 1}, "objective") == '{"objective":1}'
    # Non-ASCII text is escaped (six bytes a character): 700 characters do not fit in 4096 bytes.
    assert layout.termination_message({"name": "é" * 700}) is None


def test_values_json_cannot_hold_are_left_out() -> None:
    message = layout.termination_message({"loss": float("nan"), "acc": 0.5, "best": float("inf")}, "loss")
    assert message == '{"acc":0.5}'


@pytest.mark.parametrize("text", [None, "", "not json", "[1, 2]", '"text"', "{cut", "Traceback (most recent"])
def test_a_message_that_is_not_a_json_object_holds_no_metrics(text: str | None) -> None:
    assert layout.parse_termination_message(text) is None


# ------------------------------------------------------------------------------------- the shim, as in a pod


@pytest.fixture
def pod_shim(tmp_path: Path):
    """Run the entry shim from the rendered ConfigMap's files as a process, as a pod does; returns a runner."""
    exp = Experiment(
        name="metrics",
        image="python:3.11",
        command=["python"],
        objective={"metric": "val_accuracy", "goal": "max"},
        sweep={"grid": {"x": [1, 2]}},
    )
    mount = tmp_path / "etc-ml-jobs"
    mount.mkdir()
    for key, text in render(exp, owner="test").config_map["data"].items():
        (mount / key).write_text(text)
    termination_log = tmp_path / "termination-log"

    def run(script: str, *, report_to: Path | None = termination_log) -> tuple[subprocess.CompletedProcess, Path]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            layout.ENV_JOB_COMPLETION_INDEX: "1",
            layout.ENV_RESULTS_ROOT: str(tmp_path / "results"),
        }
        if report_to is not None:
            env[layout.ENV_TERMINATION_LOG] = str(report_to)
        command = [
            sys.executable,
            str(mount / layout.ENTRY_FILE),
            "--",
            sys.executable,
            "-c",
            textwrap.dedent(script),
        ]
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
        return proc, termination_log

    return run


WRITE = """
    import json, os, sys
    metrics = {metrics}
    with open(os.environ["METRICS_FILE"], "w") as f:
        f.write(metrics if isinstance(metrics, str) else json.dumps(metrics, indent=2))
    sys.exit({code})
"""


def test_the_shim_writes_the_runs_metrics_to_the_termination_log(pod_shim) -> None:
    proc, log = pod_shim(WRITE.format(metrics={"loss": 0.3, "val_accuracy": 0.95}, code=0))
    assert proc.returncode == 0, proc.stderr
    assert log.read_text() == '{"val_accuracy":0.95,"loss":0.3}'
    assert proc.stderr == ""


def test_oversized_metrics_are_cut_to_the_kubelets_limit_keeping_the_objective(pod_shim) -> None:
    metrics = {f"step_{i:04d}_loss": 1 / (i + 1) for i in range(1000)}
    metrics["val_accuracy"] = 0.875
    proc, log = pod_shim(WRITE.format(metrics=metrics, code=0))
    assert proc.returncode == 0, proc.stderr
    text = log.read_text()
    assert len(text.encode()) <= LIMIT
    kept = json.loads(text)
    assert next(iter(kept)) == "val_accuracy" and kept["val_accuracy"] == 0.875
    assert all(kept[k] == metrics[k] for k in kept) and len(kept) < len(metrics)


def test_a_failing_command_keeps_its_exit_status_and_still_reports(pod_shim) -> None:
    proc, log = pod_shim(WRITE.format(metrics={"val_accuracy": 0.1, "diverged": True}, code=3))
    assert proc.returncode == 3
    assert json.loads(log.read_text()) == {"val_accuracy": 0.1, "diverged": True}


def test_no_metrics_file_writes_nothing(pod_shim) -> None:
    proc, log = pod_shim("import sys; sys.exit(4)")
    assert proc.returncode == 4
    assert not log.exists() and proc.stderr == ""


@pytest.mark.parametrize(
    ("content", "problem"),
    [("'{cut'", "cannot read"), ("'[1, 2]'", "not a JSON object"), ("'[' * 100000", "RecursionError")],
)
def test_invalid_metrics_are_not_reported_and_the_exit_status_is_kept(pod_shim, content, problem) -> None:
    proc, log = pod_shim(WRITE.format(metrics=content, code=0))
    assert proc.returncode == 0
    assert not log.exists()
    assert (
        proc.stderr.startswith("ml-jobs entry: metrics not reported in the pod status: ")
        and problem in proc.stderr
    )
    assert len(proc.stderr.splitlines()) == 1


def test_an_unwritable_termination_log_does_not_change_the_exit_status(pod_shim, tmp_path) -> None:
    for code in (0, 5):
        proc, _ = pod_shim(
            WRITE.format(metrics={"val_accuracy": 0.5}, code=code), report_to=tmp_path / "no-such-dir" / "log"
        )
        assert proc.returncode == code
        assert "cannot write" in proc.stderr


def test_without_the_variable_nothing_is_written(pod_shim, tmp_path) -> None:
    proc, log = pod_shim(WRITE.format(metrics={"val_accuracy": 0.5}, code=0), report_to=None)
    assert proc.returncode == 0 and not log.exists()
    assert (tmp_path / "results" / "metrics" / "run-00001" / "metrics.json").exists()


def test_local_runs_never_write_a_termination_message(tmp_path, monkeypatch) -> None:
    # ml-jobs run --local inside a pod inherits the variable; its runs must not overwrite the pod's message.
    log = tmp_path / "termination-log"
    monkeypatch.setenv(layout.ENV_TERMINATION_LOG, str(log))
    script = tmp_path / "job.py"
    script.write_text('import os; open(os.environ["METRICS_FILE"], "w").write(\'{"score": 1}\')\n')
    exp = Experiment(
        name="local-metrics",
        image="python:3.11",
        command=["python", str(script)],
        resources={"cpu": "100m", "memory": "64Mi"},
        objective={"metric": "score"},
    )
    report = run_local(exp, results_dir=tmp_path / "runs", console=Console(file=io.StringIO()), live=False)
    assert [r.state for r in report.runs.values()] == [SUCCEEDED]
    assert (tmp_path / "runs" / "local-metrics" / "run-00000" / "metrics.json").exists()
    assert not log.exists()
