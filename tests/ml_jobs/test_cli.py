"""The ``ml-jobs`` commands of this part, run as the console script runs them (a real process)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "digits-sweep.yaml"


def ml_jobs(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ml_jobs.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        timeout=120,
        check=False,
    )


def test_help_lists_the_commands():
    done = ml_jobs("--help")
    assert done.returncode == 0
    for command in ("validate", "sweep", "render", "run"):
        assert command in done.stdout


def test_validate_an_example():
    done = ml_jobs("validate", str(EXAMPLE))
    assert done.returncode == 0, done.stderr
    assert "valid: digits-sweep, 12 run(s)" in done.stdout
    assert "pass Kubernetes 1.33-1.37 schemas" in done.stdout


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "name: exp\nimage: python:3.11\ncommand: [python]\nresources: {memory: 16gb}\n",
            "resources.memory: '16gb' is not a Kubernetes quantity (did you mean '16Gi'?)",
        ),
        (
            "name: exp\nimage: python:3.11\ncommand: [python]\nsweep: {grdi: {}}\n",
            "sweep.grdi: unknown key; did you mean 'grid'?",
        ),
        (
            "name: exp\nimage: python:3.11\ncommand: [python]\nresources: {gpus: 0.5}\n",
            "resources.gpus: must be a whole number of GPUs (GPUs are not shared by requests), got 0.5",
        ),
    ],
)
@pytest.mark.parametrize("command", ["validate", "render", "sweep"])
def test_bad_specs_give_one_line_no_traceback_exit_2(tmp_path, command, text, message):
    spec = tmp_path / "bad.yaml"
    spec.write_text(text)
    done = ml_jobs(command, str(spec))
    assert done.returncode == 2
    assert done.stderr == f"ml-jobs: error: {spec}: {message}\n"
    assert done.stdout == ""


def test_render_prints_the_objects_as_yaml():
    done = ml_jobs("render", str(EXAMPLE), "--owner", "jane", "-n", "team-a", "--revision", "2")
    assert done.returncode == 0, done.stderr
    config_map, job = yaml.safe_load_all(done.stdout)
    assert (config_map["kind"], job["kind"]) == ("ConfigMap", "Job")
    assert job["metadata"]["name"] == "digits-sweep-r2"
    assert job["metadata"]["namespace"] == "team-a"
    assert job["metadata"]["labels"]["herd.dev/owner"] == "jane"


def test_sweep_lists_every_run():
    done = ml_jobs("sweep", str(EXAMPLE), "--json")
    lines = done.stdout.splitlines()
    assert len(lines) == 12 and '"run": "run-00011"' in lines[-1]
    assert ml_jobs("sweep", str(EXAMPLE), "-i", "12").stderr == (
        f"ml-jobs: error: {EXAMPLE}: --index 12: the sweep has runs 0..11\n"
    )


def test_run_needs_local():
    done = ml_jobs("run", str(EXAMPLE))
    assert done.returncode == 2
    assert "add --local to run here" in done.stderr


@pytest.mark.slow
def test_the_example_runs_locally_and_leaves_metrics_and_models(tmp_path):
    done = ml_jobs("run", str(EXAMPLE), "--local", "--results-dir", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "12 succeeded, 0 failed of 12" in done.stdout
    assert "digits-sweep: ranked" in done.stdout
    runs = sorted((tmp_path / "digits-sweep").glob("run-*"))
    assert len(runs) == 12
    for run in runs:
        assert (run / "model.pkl").stat().st_size > 1000
        metrics = yaml.safe_load((run / "metrics.json").read_text())
        assert 0.8 < metrics["val_accuracy"] <= 1.0
        assert (run / "logs" / "attempt-1.log").exists()


def test_cli_start_up_does_not_import_heavy_modules():
    # `ml-jobs --help` stays instant: pydantic, YAML, the kubernetes client and the validator load in commands.
    probe = (
        "import sys, ml_jobs.cli; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'pydantic', 'yaml', 'kubernetes', 'kubernetes_validate', 'jsonschema'}))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    assert done.stdout.strip() == "[]"


def test_every_command_is_a_module_level_function():
    # Commands are importable and testable one by one (not closures inside a registration function).
    from importlib import import_module

    from ml_jobs.cli import app

    commands = {info.name or info.callback.__name__: info.callback for info in app.registered_commands}
    assert {"validate", "sweep", "render", "run", "submit", "status", "logs", "cancel", "ls", "results"} <= set(
        commands
    )
    for name, callback in commands.items():
        assert callback is not None
        assert callback.__qualname__ == callback.__name__, f"{name} is nested in {callback.__qualname__}"
        assert getattr(import_module(callback.__module__), callback.__name__) is callback
