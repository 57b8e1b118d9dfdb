"""The local backend, end to end with real subprocesses started through the real entry shim.

A small test script (written per test) behaves according to its parameter ``mode``; the backend must retry,
stop retrying on final exit codes, resume, bound concurrency, and stop every process on a real SIGINT.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from rich.console import Console

from ml_jobs import layout
from ml_jobs.local import FAILED, INTERRUPTED, SUCCEEDED, LocalError, plan, run_local
from ml_jobs.spec import Experiment

SCRIPT = textwrap.dedent(
    """
    import json, os, signal, subprocess, sys, time
    from pathlib import Path

    params = json.loads(Path(os.environ["PARAMS_FILE"]).read_text())
    mode = params["mode"]
    attempt = int(os.environ["RUN_ATTEMPT"])
    checkpoint = Path(os.environ["CHECKPOINT_DIR"]) / "attempts.txt"
    with checkpoint.open("a") as f:  # the same file across retries: CHECKPOINT_DIR is stable
        f.write(f"{attempt}\\n")
    print(f"mode={mode} attempt={attempt} threads={os.environ.get('OMP_NUM_THREADS')}", flush=True)
    if mode == "flaky" and attempt == 1:
        sys.exit(1)
    if mode == "final":
        sys.exit(3)
    if mode == "always":
        sys.exit(1)
    if mode in ("sleep", "stubborn"):
        release = Path(os.environ["TEST_RELEASE_FILE"])
        if not release.exists():
            if mode == "stubborn":
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
            child = subprocess.Popen(["sleep", "300"])  # a grandchild in the run's process group
            Path(os.environ["RESULTS_DIR"], "pids").write_text(f"{os.getpid()} {child.pid}")
            time.sleep(300)
    Path(os.environ["METRICS_FILE"]).write_text(json.dumps({"score": params["score"], "attempt": attempt}))
    """
)


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "job.py"
    path.write_text(SCRIPT)
    return path


def experiment(script: Path, runs: list[dict], **fields) -> Experiment:
    spec = {
        "name": "local-test",
        "image": "python:3.11",
        "command": ["python", str(script)],
        "resources": {"cpu": "100m", "memory": "64Mi"},
        "retries": 2,
        "final_exit_codes": [3],
        "objective": {"metric": "score", "goal": "max"},
        "sweep": {"list": runs},
    }
    spec.update(fields)
    return Experiment(**spec)


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def attempts_logged(root: Path, index: int) -> list[str]:
    return sorted(p.name for p in (root / "local-test" / layout.run_name(index) / "logs").iterdir())


@pytest.mark.slow
def test_retries_final_exit_codes_logs_metrics_and_resume(script, tmp_path):
    root = tmp_path / "runs"
    runs = [
        {"mode": "ok", "score": 0.5},
        {"mode": "flaky", "score": 0.9},
        {"mode": "final", "score": 0.0},
        {"mode": "always", "score": 0.0},
    ]
    exp = experiment(script, runs)
    report = run_local(exp, results_dir=root, console=quiet())
    states = {i: (r.state, r.attempts, r.exit_code) for i, r in report.runs.items()}
    assert states == {
        0: (SUCCEEDED, 1, 0),
        1: (SUCCEEDED, 2, 0),  # failed once, retried, succeeded
        2: (FAILED, 1, 3),  # final exit code: not retried
        3: (FAILED, 3, 1),  # retries: 2 -> three attempts in all
    }
    assert attempts_logged(root, 1) == ["attempt-1.log", "attempt-2.log"]
    assert attempts_logged(root, 3) == ["attempt-1.log", "attempt-2.log", "attempt-3.log"]
    run1 = root / "local-test" / "run-00001"
    assert (run1 / "logs" / "attempt-2.log").read_text().startswith("mode=flaky attempt=2")
    assert (run1 / "checkpoint" / "attempts.txt").read_text() == "1\n2\n"  # one checkpoint dir for both attempts
    assert json.loads((run1 / "metrics.json").read_text()) == {"score": 0.9, "attempt": 2}
    assert json.loads((run1 / "params.json").read_text()) == {"mode": "flaky", "score": 0.9}
    assert [r.run for r in report.results if r.metrics] == ["run-00000", "run-00001"]
    assert report.failed == [2, 3] and not report.ok and not report.interrupted

    # GIVEN the same spec again WHEN it runs THEN succeeded runs are kept and only the failed ones run again.
    started = []
    again = run_local(
        exp,
        results_dir=root,
        console=quiet(),
        on_event=lambda e, s: started.append(s.index) if e == "started" else None,
    )
    assert sorted(set(started)) == [2, 3]
    assert again.plan.done == {0, 1}
    assert attempts_logged(root, 0) == ["attempt-1.log"]
    # Earlier logs are kept: attempts are numbered across invocations; the retry budget is per invocation.
    assert attempts_logged(root, 2) == ["attempt-1.log", "attempt-2.log"]
    assert [f"attempt-{n}.log" in attempts_logged(root, 3) for n in range(1, 7)] == [True] * 6
    assert (again.runs[3].tries, again.runs[3].attempts, again.runs[3].state) == (3, 6, FAILED)


@pytest.mark.slow
def test_concurrency_never_exceeds_the_slots(script, tmp_path):
    exp = experiment(script, [{"mode": "ok", "score": i} for i in range(6)])
    running, peak = set(), []

    def track(event, state):
        if event == "started":
            running.add(state.index)
        elif event in ("succeeded", "failed", "retrying"):
            running.discard(state.index)
        peak.append(len(running))

    report = run_local(exp, results_dir=tmp_path, parallelism=2, console=quiet(), on_event=track)
    assert report.ok and report.plan.slots == 2
    assert max(peak) == 2


def cli(*args: str, env: dict | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "ml_jobs.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
        **kwargs,
    )


def wait_for(predicate, timeout: float = 60.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose; it is reaped by its parent (or by init once the parent is gone).
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split(") ")[1][0] != "Z"


@pytest.mark.slow
def test_ctrl_c_stops_every_process_and_the_next_run_resumes(script, tmp_path):
    # GIVEN a sweep whose runs 1 and 2 hang (one ignores SIGTERM), each with a grandchild process
    root, release = tmp_path / "runs", tmp_path / "release"
    runs = [{"mode": "ok", "score": 1}, {"mode": "sleep", "score": 2}, {"mode": "stubborn", "score": 3}]
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(json.dumps(experiment(script, runs).to_dict()))  # JSON is YAML
    env = {"TEST_RELEASE_FILE": str(release)}
    proc = cli("run", str(spec_path), "--local", "-o", str(root), "-p", "3", "--grace", "1", env=env)
    pid_files = [root / "local-test" / layout.run_name(i) / "pids" for i in (1, 2)]
    status_0 = root / "local-test" / "run-00000" / "status.json"
    wait_for(lambda: all(p.exists() for p in pid_files) and '"succeeded"' in _text(status_0))
    pids = [int(x) for p in pid_files for x in p.read_text().split()]
    assert all(alive(pid) for pid in pids)

    # WHEN the user presses Ctrl-C (a real SIGINT to ml-jobs)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)

    # THEN ml-jobs exits 130, every run and grandchild is gone, and the runs are recorded as interrupted
    assert proc.returncode == 130, out
    assert "stopped by SIGINT" in out
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=10)
    status = [json.loads((root / "local-test" / layout.run_name(i) / "status.json").read_text()) for i in range(3)]
    assert [s["state"] for s in status] == [SUCCEEDED, INTERRUPTED, INTERRUPTED]
    assert "run the same command again to resume" in out

    # WHEN it runs again (the hang released) THEN only the interrupted runs run, and all succeed
    release.write_text("go")
    again = cli("run", str(spec_path), "--local", "-o", str(root), env=env)
    out, _ = again.communicate(timeout=120)
    assert again.returncode == 0, out
    assert "1 kept from before" in out
    assert attempts_logged(root, 0) == ["attempt-1.log"]
    assert "3 succeeded, 0 failed of 3" in out


@pytest.mark.parametrize(
    "case",
    [
        ({"cpu": "1", "memory": "512Mi"}, {}, 2, "2 CPUs / 1 per run"),
        ({"cpu": "500m", "memory": "512Mi"}, {}, 4, "2 CPUs / 500m per run"),
        ({"cpu": "250m", "memory": "3Gi"}, {}, 3, "10.0 GiB available / 3Gi per run"),
        ({"cpu": "100m", "memory": "64Mi"}, {"parallelism": 1}, 1, "--parallelism 1"),
        ({"cpu": "100m", "memory": "64Mi"}, {}, 6, "6 runs"),
        (
            {"cpu": "8", "memory": "1Gi"},
            {},
            1,
            "one at a time: a run asks for more than this machine has (2 CPUs / 8 per run)",
        ),
        ({"cpu": "100m", "memory": "64Mi", "gpus": 1}, {"gpu_ids": ["0", "1", "2"]}, 3, "3 GPUs / 1 per run"),
        ({"cpu": "100m", "memory": "64Mi", "gpus": 1}, {"ignore_gpus": True, "gpu_ids": []}, 6, "6 runs"),
    ],
)
def test_runs_at_once_follow_the_declared_resources(script, tmp_path, case):
    resources, options, slots, reason = case
    exp = experiment(script, [{"mode": "ok", "score": i} for i in range(6)], resources=resources)
    the_plan = plan(exp, tmp_path, cpus=2, memory_bytes=10 * 2**30, **options)
    assert (the_plan.slots, the_plan.reason) == (slots, reason)


def test_gpu_runs_without_gpus_are_refused_before_anything_starts(script, tmp_path):
    exp = experiment(script, [{"mode": "ok", "score": 1}], resources={"gpus": 2})
    with pytest.raises(LocalError) as raised:
        plan(exp, tmp_path / "runs", cpus=2, memory_bytes=2**34, gpu_ids=["0"])
    assert str(raised.value) == (
        "local-test: each run needs 2 GPU(s) and this machine has 1; pass --ignore-gpus to run without them"
    )
    assert not (tmp_path / "runs").exists()


def test_a_changed_spec_gets_the_next_revision_directory(script, tmp_path):
    first = experiment(script, [{"mode": "ok", "score": 1}])
    changed = experiment(script, [{"mode": "ok", "score": 2}])
    assert plan(first, tmp_path, cpus=2).experiment_dir == tmp_path / "local-test"
    meta = tmp_path / "local-test" / ".ml-jobs"
    meta.mkdir(parents=True)
    (meta / "experiment.json").write_text(json.dumps({"spec_hash": first.spec_hash()}))
    assert plan(first, tmp_path, cpus=2).revision == 1
    assert plan(changed, tmp_path, cpus=2).experiment_dir == tmp_path / "local-test-r2"


def test_an_unwritable_results_directory_is_one_error_and_nothing_runs(script, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    exp = experiment(script, [{"mode": "ok", "score": 1}])
    with pytest.raises(
        LocalError, match=r"^local-test: cannot write results under .*/file/runs: Not a directory$"
    ):
        run_local(exp, results_dir=blocker / "runs", console=quiet())


GPU_SCRIPT = """
import json, os, time
from pathlib import Path
start = time.time()
time.sleep(0.3)
Path(os.environ["METRICS_FILE"]).write_text(json.dumps({"start": start, "end": time.time()}))
Path(os.environ["RESULTS_DIR"], "gpus").write_text(os.environ.get("CUDA_VISIBLE_DEVICES", "unset"))
"""


@pytest.mark.slow
def test_gpus_are_handed_out_so_concurrent_runs_never_share_one(tmp_path, monkeypatch):
    # GIVEN a machine with three GPUs (what CUDA_VISIBLE_DEVICES says; no real GPU here) and runs needing one each
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,2")
    script = tmp_path / "gpu.py"
    script.write_text(GPU_SCRIPT)
    exp = Experiment(
        name="gpu-test",
        image="python:3.11",
        command=["python", str(script)],
        resources={"cpu": "100m", "memory": "64Mi", "gpus": 1},
        sweep={"grid": {"i": list(range(7))}},
    )
    report = run_local(exp, results_dir=tmp_path / "runs", console=quiet())
    assert report.ok and report.plan.slots == 3
    spans = []
    for result in report.results:
        gpu = (result.path / "gpus").read_text()
        spans.append((gpu, result.metrics["start"], result.metrics["end"]))
    assert {gpu for gpu, _, _ in spans} == {"0", "1", "2"}
    for a in spans:
        for b in spans:
            if a is not b and a[0] == b[0]:
                assert a[2] <= b[1] or b[2] <= a[1], f"GPU {a[0]} shared by two runs at once"


@pytest.mark.slow
def test_the_deadline_stops_the_sweep(script, tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_RELEASE_FILE", str(tmp_path / "never"))
    exp = experiment(script, [{"mode": "sleep", "score": 1}, {"mode": "sleep", "score": 2}], deadline=1)
    started = time.time()
    report = run_local(exp, results_dir=tmp_path / "runs", console=quiet(), grace_seconds=1)
    assert time.time() - started < 20
    assert report.stopped_by == "deadline" and not report.ok
    assert {r.state for r in report.runs.values()} == {INTERRUPTED}
    assert report.runs[0].note == "deadline of 1s passed"
    # (under heavy load a run may be stopped before it wrote its pids: then there is nothing left to check)
    pid_files = [tmp_path / "runs/local-test" / layout.run_name(i) / "pids" for i in (0, 1)]
    pids = [int(x) for f in pid_files if f.exists() for x in f.read_text().split()]
    wait_for(lambda: not any(alive(pid) for pid in pids), timeout=10)
