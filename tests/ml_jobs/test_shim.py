"""The entry shim as a process supervisor: signals reach the run's command, and exit statuses come back.

In a pod the shim is PID 1. The last test runs it as PID 1 of a fresh PID namespace (root and util-linux's
``unshare`` needed) and shows why it does not simply exec the command: a Python script exec'd as PID 1 without a
SIGTERM handler ignores SIGTERM.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ml_jobs import _shim, layout
from ml_jobs.render import sweep_definition
from ml_jobs.spec import Experiment

HANDLER = """
import signal, sys, time
from pathlib import Path
def stop(signum, frame):
    Path(sys.argv[1]).write_text(signal.Signals(signum).name)
    sys.exit(7)
signal.signal(signal.SIGTERM, stop)
Path(sys.argv[2]).write_text("ready")
time.sleep(60)
"""
NO_HANDLER = """
import sys, time
from pathlib import Path
Path(sys.argv[1]).write_text("ready")
time.sleep(60)
"""


@pytest.fixture
def shim_env(tmp_path):
    exp = Experiment(name="sig", image="python:3.11", command=["python"], sweep={"grid": {"x": [1, 2]}})
    sweep_file = tmp_path / "sweep.json"
    sweep_file.write_text(json.dumps(sweep_definition(exp)))
    return {
        **os.environ,
        layout.ENV_JOB_COMPLETION_INDEX: "1",
        layout.ENV_SWEEP_FILE: str(sweep_file),
        layout.ENV_RESULTS_ROOT: str(tmp_path / "results"),
    }


def wait_for_file(path: Path, timeout: float = 30.0) -> None:
    end = time.time() + timeout
    while not path.exists():
        assert time.time() < end, f"{path} never appeared"
        time.sleep(0.02)


def test_sigterm_is_forwarded_and_the_commands_exit_status_returned(shim_env, tmp_path):
    got, ready = tmp_path / "got", tmp_path / "ready"
    shim = subprocess.Popen(
        [sys.executable, _shim.__file__, "--", sys.executable, "-c", HANDLER, str(got), str(ready)], env=shim_env
    )
    wait_for_file(ready)
    shim.send_signal(signal.SIGTERM)
    assert shim.wait(timeout=30) == 7
    assert got.read_text() == "SIGTERM"


def test_a_command_killed_by_a_signal_exits_128_plus_n(shim_env, tmp_path):
    ready = tmp_path / "ready"
    shim = subprocess.Popen(
        [sys.executable, _shim.__file__, "--", sys.executable, "-c", NO_HANDLER, str(ready)], env=shim_env
    )
    wait_for_file(ready)
    shim.send_signal(signal.SIGTERM)
    assert shim.wait(timeout=30) == 128 + signal.SIGTERM


def test_exit_codes_pass_through(shim_env):
    done = subprocess.run(
        [sys.executable, _shim.__file__, "--", sys.executable, "-c", "import sys; sys.exit(42)"],
        env=shim_env,
        check=False,
    )
    assert done.returncode == 42


def _child_of(pid: int) -> int:
    end = time.time() + 30
    while time.time() < end:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.02)
    raise AssertionError("no child")


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare(1)")
def test_as_pid_1_the_shim_delivers_sigterm_where_exec_would_not(shim_env, tmp_path):
    def in_pid_namespace(argv: list[str], ready: Path) -> tuple[subprocess.Popen, int]:
        outer = subprocess.Popen(["unshare", "--pid", "--fork", "--kill-child", *argv], env=shim_env)
        wait_for_file(ready)
        return outer, _child_of(outer.pid)  # the process that is PID 1 inside

    # Without the shim: the script itself is PID 1, has no SIGTERM handler, and SIGTERM does nothing.
    bare, bare_ready = None, tmp_path / "bare-ready"
    try:
        bare, pid1 = in_pid_namespace([sys.executable, "-c", NO_HANDLER, str(bare_ready)], bare_ready)
        os.kill(pid1, signal.SIGTERM)
        time.sleep(1.0)
        assert bare.poll() is None, "a PID 1 without a handler should have ignored SIGTERM"
    finally:
        if bare is not None:
            bare.kill()
            bare.wait()

    # With the shim as PID 1: SIGTERM reaches the script, which dies of it; the status says so.
    ready = tmp_path / "ready"
    outer, pid1 = in_pid_namespace(
        [sys.executable, _shim.__file__, "--", sys.executable, "-c", NO_HANDLER, str(ready)], ready
    )
    (nspid,) = [
        line for line in Path(f"/proc/{pid1}/status").read_text().splitlines() if line.startswith("NSpid:")
    ]
    assert nspid.split()[-1] == "1"  # the shim is PID 1 in its namespace
    os.kill(pid1, signal.SIGTERM)
    assert outer.wait(timeout=30) == 128 + signal.SIGTERM


def test_every_run_directory_is_joined_by_layout():
    # The results layout <root>/<experiment>/<run>/checkpoint has one owner: the shim's environment (in pods and
    # locally) and the local backend's and results reader's paths all come from layout's helpers.
    exp = Experiment(name="exp", image="python:3.11", command=["python"], sweep={"grid": {"lr": [0.1, 0.2]}})
    env = _shim.run_environment(sweep_definition(exp, revision=2), 1, "/results", attempt=1)
    run = layout.run_dir(layout.experiment_dir("/results", "exp", revision=2), 1)
    assert run == "/results/exp-r2/run-00001"
    assert (env[layout.ENV_RESULTS_DIR], env[layout.ENV_CHECKPOINT_DIR]) == (run, layout.checkpoint_dir(run))
    assert layout.checkpoint_dir(run) == "/results/exp-r2/run-00001/checkpoint"
    assert layout.run_dir(Path("/tmp/runs/exp"), 3) == "/tmp/runs/exp/run-00003"
