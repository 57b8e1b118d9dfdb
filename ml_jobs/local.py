"""The local backend: run an experiment's sweep as processes on this machine, the way the cluster would.

Each run is started exactly as a pod starts it — the entry shim (``ml_jobs/_shim.py``, the file the sweep
ConfigMap carries as ``entry.py``) with ``JOB_COMPLETION_INDEX`` set — so runs see the same parameters and the
same environment contract locally and in the cluster. Like the Job controller, the backend retries a failed run
up to ``retries`` times unless its exit code is final, runs as many at once as the declared resources fit on
this machine (or ``parallelism``), and keeps going when one run fails.

On disk, under the results directory (``./runs`` by default)::

    <results>/<experiment>/.ml-jobs/experiment.json   spec, spec hash and revision of this directory
    <results>/<experiment>/.ml-jobs/sweep.json        the sweep definition the shim reads
    <results>/<experiment>/<run>/...                  the layout of ``ml_jobs.layout``
    <results>/<experiment>/<run>/logs/attempt-N.log   stdout and stderr of each attempt
    <results>/<experiment>/<run>/status.json          the local backend's record: state, attempts, exit code

Running the same spec again resumes: succeeded runs are kept, the others run again. A changed spec under the
same name gets the next revision's directory (``<name>-r2``), as ``ml-jobs submit`` does in the cluster.

Ctrl-C (SIGINT) or SIGTERM stops every run as a pod deletion would: the run's shim gets SIGTERM and forwards it
to the command; after a grace period (or a second Ctrl-C) the run's whole process group gets SIGKILL, which
also ends whatever the run left behind. Interrupted runs are recorded as such and run again next time.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ml_jobs import _shim, layout
from ml_jobs.errors import HerdError, ResultsError
from ml_jobs.quantity import parse_quantity
from ml_jobs.render import sweep_definition

if TYPE_CHECKING:
    from rich.console import Console

    from ml_jobs.results import ExperimentResults, RunResult
    from ml_jobs.spec import Experiment

__all__ = [
    "LocalError",
    "LocalReport",
    "Plan",
    "RunState",
    "local_revisions",
    "plan",
    "read_local_results",
    "run_local",
]

META_DIR = ".ml-jobs"
EXPERIMENT_FILE = "experiment.json"
STATUS_FILE = "status.json"
SUCCEEDED, FAILED, INTERRUPTED, RUNNING, PENDING = "succeeded", "failed", "interrupted", "running", "pending"
_POLL_SECONDS = 0.05
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")


class LocalError(HerdError):
    """The experiment cannot run on this machine as asked (e.g. it needs GPUs this machine lacks)."""


@dataclass
class RunState:
    """One run as the local backend tracks it."""

    index: int
    state: str = PENDING
    attempts: int = 0  # every attempt of this run, earlier invocations included (names the log files)
    exit_code: int | None = None
    started: float | None = None
    finished: float | None = None
    note: str = ""
    tries: int = 0  # attempts in this invocation: what the retry budget counts, as for a fresh Job

    @property
    def seconds(self) -> float | None:
        """Wall time of the last attempt."""
        if self.started is None:
            return None
        return (self.finished or time.time()) - self.started


@dataclass(frozen=True)
class Plan:
    """Where and how a sweep runs locally, decided before anything starts."""

    experiment_dir: Path
    revision: int
    slots: int
    reason: str  # why this many runs at once
    done: frozenset[int]  # runs that succeeded before and are kept
    gpus: tuple[str, ...]  # GPU ids handed out to runs (empty when runs need none)
    threads: int  # BLAS/OpenMP threads per run, from the run's CPU limit


@dataclass
class LocalReport:
    """The outcome of ``run_local``."""

    experiment: Experiment
    plan: Plan
    runs: dict[int, RunState]
    seconds: float
    stopped_by: str | None = None  # "SIGINT", "SIGTERM" or "deadline" when the sweep did not run to its end
    results: list[RunResult] = field(default_factory=list)

    @property
    def interrupted(self) -> bool:
        """The sweep was stopped before every run ended."""
        return self.stopped_by is not None

    @property
    def failed(self) -> list[int]:
        """Indices of runs that failed for good."""
        return [i for i, r in self.runs.items() if r.state == FAILED]

    @property
    def ok(self) -> bool:
        """Every run succeeded."""
        return not self.interrupted and all(r.state == SUCCEEDED for r in self.runs.values())


# ------------------------------------------------------------------------------------------------ planning


def _write_json(path: Path, doc: Any) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _revision_dir(exp: Experiment, root: Path) -> tuple[Path, int, bool]:
    """The directory of this spec's revision: an existing one with the same spec hash, or the next free one."""
    digest = exp.spec_hash()
    revision = 1
    while True:
        path = root / layout.experiment_dir_name(exp.name, revision)
        meta = _read_json(path / META_DIR / EXPERIMENT_FILE)
        if meta is None and not path.exists():
            return path, revision, False
        if isinstance(meta, dict) and meta.get("spec_hash") == digest:
            return path, revision, True
        if meta is None and path.exists() and not any(path.iterdir()):
            return path, revision, False
        revision += 1


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _memory_bytes() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _gpu_ids() -> list[str]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g for g in visible.split(",") if g.strip()]
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def plan(
    exp: Experiment,
    results_dir: str | Path,
    *,
    parallelism: int | None = None,
    ignore_gpus: bool = False,
    cpus: int | None = None,
    memory_bytes: int | None = None,
    gpu_ids: list[str] | None = None,
) -> Plan:
    """Decide the revision directory and how many runs fit on this machine at once.

    Runs at once = the smallest of: the spec's or the caller's parallelism, this machine's CPUs divided by the
    CPU request, its available memory divided by the memory request, its GPUs divided by the GPU request.

    Raises:
        LocalError: runs need GPUs and this machine has too few (pass ``ignore_gpus`` to run them without).
    """
    root = Path(results_dir)
    experiment_dir, revision, _ = _revision_dir(exp, root)
    res = exp.resources
    cpus = cpus if cpus is not None else _cpus()
    memory = memory_bytes if memory_bytes is not None else _memory_bytes()
    limits: list[tuple[int, str]] = [(exp.runs, f"{exp.runs} runs")]
    if parallelism is not None:
        limits.append((parallelism, f"--parallelism {parallelism}"))
    elif exp.parallelism is not None:
        limits.append((exp.parallelism, f"parallelism {exp.parallelism}"))
    limits.append((math.floor(cpus / res.cpu_cores), f"{cpus} CPUs / {res.cpu} per run"))
    if memory is not None:
        limits.append((memory // res.memory_bytes, f"{memory / 2**30:.1f} GiB available / {res.memory} per run"))
    gpus: tuple[str, ...] = ()
    if res.gpus and not ignore_gpus:
        ids = gpu_ids if gpu_ids is not None else _gpu_ids()
        if len(ids) < res.gpus:
            raise LocalError(
                f"{exp.name}: each run needs {res.gpus} GPU(s) and this machine has {len(ids)}; "
                "pass --ignore-gpus to run without them"
            )
        gpus = tuple(ids)
        limits.append((len(ids) // res.gpus, f"{len(ids)} GPUs / {res.gpus} per run"))
    slots, reason = min(limits, key=lambda item: item[0])
    if slots < 1:
        slots, reason = 1, f"one at a time: a run asks for more than this machine has ({reason})"
    done = frozenset(
        i
        for i in range(exp.runs)
        if (_read_json(Path(layout.run_dir(experiment_dir, i)) / STATUS_FILE) or {}).get("state") == SUCCEEDED
    )
    threads = max(1, math.floor(parse_quantity(res.cpu_limit)))
    return Plan(experiment_dir, revision, slots, reason, done, gpus, threads)


# ------------------------------------------------------------------------------------------------- results


def local_revisions(results_dir: str | Path, experiment: str) -> list[int]:
    """The revisions of ``experiment`` that ran under ``results_dir`` (directories holding their spec)."""
    root = Path(results_dir)
    found = []
    revision = 1
    while (path := root / layout.experiment_dir_name(experiment, revision)).exists():
        if (path / META_DIR / EXPERIMENT_FILE).is_file():
            found.append(revision)
        revision += 1
    return found


def read_local_results(
    results_dir: str | Path, experiment: str, *, revision: int | None = None
) -> ExperimentResults:
    """Every local run of ``experiment`` (the latest revision, or ``revision``) with its parameters, metrics
    and state, read from ``results_dir`` alone — no cluster, no kubeconfig.

    Raises:
        ResultsError: no local runs of the experiment there, or not that revision.
    """
    from ml_jobs.results import ExperimentResults, read_results
    from ml_jobs.spec import parse_spec

    root = Path(results_dir)
    known = local_revisions(root, experiment)
    if not known:
        raise ResultsError(
            f"{root / experiment}: no local runs of {experiment!r} here "
            f"(`ml-jobs run SPEC --local -o {root}` makes them)"
        )
    if revision is not None and revision not in known:
        raise ResultsError(
            f"{experiment!r} has no local revision {revision} under {root}; it has "
            + ", ".join(str(r) for r in known)
        )
    rev = revision if revision is not None else known[-1]
    exp_dir = root / layout.experiment_dir_name(experiment, rev)
    meta = _read_json(exp_dir / META_DIR / EXPERIMENT_FILE)
    exp = parse_spec((meta or {}).get("spec"), str(exp_dir / META_DIR / EXPERIMENT_FILE))
    runs = read_results(root, exp_dir.name, range(exp.runs))
    states = {
        i: str((_read_json(Path(layout.run_dir(exp_dir, i)) / STATUS_FILE) or {}).get("state") or PENDING)
        for i in range(exp.runs)
    }
    return ExperimentResults(
        experiment, rev, exp.objective, runs, f"local {exp_dir}", list(exp.sweep.names()), states
    )


# ------------------------------------------------------------------------------------------------- running


@dataclass
class _Active:
    state: RunState
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    log_path: Path
    gpus: list[str]


class _Stop:
    """Turns SIGINT/SIGTERM into a flag the scheduler loop reads (a second signal makes the stop forceful)."""

    def __init__(self) -> None:
        self.requested = 0
        self.signal_name = ""

    def __call__(self, signum: int, frame: object) -> None:
        self.requested += 1
        self.signal_name = signal.Signals(signum).name

    @contextmanager
    def installed(self) -> Iterator[_Stop]:
        previous = {s: signal.signal(s, self) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def run_local(
    exp: Experiment,
    *,
    results_dir: str | Path = layout.LOCAL_RESULTS_DIR,
    parallelism: int | None = None,
    ignore_gpus: bool = False,
    grace_seconds: float = 10.0,
    console: Console | None = None,
    live: bool = True,
    on_event: Callable[[str, RunState], None] | None = None,
) -> LocalReport:
    """Run every run of ``exp`` that has not succeeded yet, as local processes; return the outcome.

    Args:
        exp: the experiment.
        results_dir: the results root (the local stand-in for the results volume).
        parallelism: at most this many runs at once (default: what the resources allow).
        ignore_gpus: run GPU runs without GPUs (for a smoke test of the code path).
        grace_seconds: after SIGTERM, how long runs get to exit before SIGKILL.
        console: where progress goes (default: a rich console on stdout).
        live: show the live progress display when the console is a terminal (otherwise one line per event).
        on_event: called with ("started" | "retrying" | "succeeded" | "failed" | "interrupted", state).

    Raises:
        LocalError: the runs cannot run on this machine as asked.
    """
    from rich.console import Console

    from ml_jobs.results import read_results

    console = console or Console()
    the_plan = plan(exp, results_dir, parallelism=parallelism, ignore_gpus=ignore_gpus)
    meta = the_plan.experiment_dir / META_DIR
    try:
        meta.mkdir(parents=True, exist_ok=True)
        _write_json(
            meta / EXPERIMENT_FILE,
            {"name": exp.name, "revision": the_plan.revision, "spec_hash": exp.spec_hash(), "spec": exp.to_dict()},
        )
        _write_json(meta / layout.SWEEP_FILE, sweep_definition(exp, the_plan.revision))
    except OSError as e:
        raise LocalError(f"{exp.name}: cannot write results under {results_dir}: {e.strerror or e}") from e

    started_at = time.time()
    sweep = _Sweep(exp, the_plan, Path(results_dir), grace_seconds, on_event)
    with _View(console, exp, the_plan, sweep.runs, live) as view:
        stopped_by = sweep.run(view)
    results = read_results(results_dir, the_plan.experiment_dir.name, range(exp.runs))
    return LocalReport(exp, the_plan, sweep.runs, time.time() - started_at, stopped_by, results)


class _Sweep:
    """The scheduler: a queue of runs, at most ``slots`` processes at once, retries, and stopping."""

    def __init__(
        self,
        exp: Experiment,
        the_plan: Plan,
        root: Path,
        grace: float,
        on_event: Callable[[str, RunState], None] | None,
    ) -> None:
        self.exp = exp
        self.plan = the_plan
        self.root = root
        self.dir = the_plan.experiment_dir
        self.grace = grace
        self.on_event = on_event
        self.runs = {i: RunState(i) for i in range(exp.runs)}
        for i in the_plan.done:
            previous = _read_json(Path(layout.run_dir(self.dir, i)) / STATUS_FILE) or {}
            self.runs[i] = RunState(i, SUCCEEDED, previous.get("attempts", 1), 0, note="kept from an earlier run")
        for i in range(exp.runs):
            if i not in the_plan.done:
                previous = _read_json(Path(layout.run_dir(self.dir, i)) / STATUS_FILE) or {}
                self.runs[i].attempts = int(previous.get("attempts") or 0)
        self.queue: deque[int] = deque(i for i in range(exp.runs) if i not in the_plan.done)
        self.free_gpus = list(the_plan.gpus)
        self.active: dict[int, _Active] = {}
        self.view: _View | None = None

    def emit(self, event: str, state: RunState) -> None:
        if self.view is not None:
            self.view.event(event, state)
        if self.on_event is not None:
            self.on_event(event, state)

    def run(self, view: _View) -> str | None:
        """Run until every run ended (``None``) or a signal or the deadline stopped the sweep (its name)."""
        self.view = view
        deadline = time.time() + self.exp.deadline if self.exp.deadline else None
        with _Stop().installed() as stop, self._kill_on_error():
            while self.queue or self.active:
                if stop.requested or (deadline is not None and time.time() > deadline):
                    stopped_by = stop.signal_name if stop.requested else "deadline"
                    reason = (
                        f"stopped by {stopped_by}"
                        if stop.requested
                        else f"deadline of {self.exp.deadline}s passed"
                    )
                    self.stop_all(stop, reason)
                    return stopped_by
                while self.queue and len(self.active) < self.plan.slots:
                    self.start(self.queue.popleft())
                for index, item in list(self.active.items()):
                    code = item.process.poll()
                    if code is not None:
                        self.finish(index, code)
                view.refresh()
                time.sleep(_POLL_SECONDS)
        return None

    @contextmanager
    def _kill_on_error(self) -> Iterator[None]:
        """If the scheduler itself fails (a full disk, a bug), leave no run behind."""
        try:
            yield
        except BaseException:
            for item in self.active.values():
                _signal_group(item.process, signal.SIGKILL)
                item.process.wait()
                item.log.close()
            raise

    def start(self, index: int) -> None:
        state = self.runs[index]
        state.attempts += 1
        state.tries += 1
        state.state, state.exit_code, state.note = RUNNING, None, ""
        state.started, state.finished = time.time(), None
        run_path = Path(layout.run_dir(self.dir, index))
        log_path = Path(layout.attempt_log(run_path, state.attempts))
        log_path.parent.mkdir(parents=True, exist_ok=True)
        gpus = [self.free_gpus.pop(0) for _ in range(self.exp.resources.gpus)] if self.plan.gpus else []
        log = open(log_path, "wb")  # noqa: SIM115 - closed when the run ends
        process = subprocess.Popen(
            [sys.executable, _shim.__file__, "--", *self.exp.command, *self.exp.args],
            env=_environment(self.exp, self.plan, index=index, attempt=state.attempts, root=self.root, gpus=gpus),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: Ctrl-C reaches us only; we stop the whole group
        )
        self.active[index] = _Active(state, process, log, log_path, gpus)
        _record(self.dir, state)
        self.emit("started", state)

    def finish(self, index: int, code: int) -> None:
        item = self.active.pop(index)
        item.log.close()
        self.free_gpus.extend(item.gpus)
        state = item.state
        state.exit_code, state.finished = code, time.time()
        if code == 0:
            state.state = SUCCEEDED
            event = "succeeded"
        elif code in self.exp.final_exit_codes:
            state.state, state.note = FAILED, f"exit code {code} is final: not retried"
            event = "failed"
        elif state.tries <= self.exp.retries:
            # Like backoffLimitPerIndex: the same index again, first in line.
            state.state, state.note = PENDING, f"exit code {_describe(code)}: retrying"
            event = "retrying"
            self.queue.appendleft(index)
        else:
            state.state, state.note = FAILED, f"exit code {_describe(code)} after {state.tries} attempts"
            event = "failed"
        _record(self.dir, state)
        self.emit(event, state)

    def stop_all(self, stop: _Stop, reason: str) -> None:
        """SIGTERM every run's process group; SIGKILL what is left after the grace period or a second signal."""
        if self.active and self.view is not None:
            self.view.message(
                f"[yellow]{reason}: stopping {len(self.active)} running run(s) "
                f"(SIGTERM, SIGKILL after {self.grace:g}s)[/]"
            )
        first = stop.requested
        for item in self.active.values():
            # As the kubelet does: SIGTERM to the container's PID 1 (the shim), which forwards it to the run.
            with suppress(ProcessLookupError):
                item.process.send_signal(signal.SIGTERM)
        end = time.time() + self.grace
        while time.time() < end and stop.requested <= first:
            if all(item.process.poll() is not None for item in self.active.values()):
                break
            time.sleep(_POLL_SECONDS)
        for item in self.active.values():
            if item.process.poll() is None:
                _signal_group(item.process, signal.SIGKILL)
        for index, item in list(self.active.items()):
            item.process.wait()
            _signal_group(item.process, signal.SIGKILL)  # whatever the run left behind in its group
            item.log.close()
            state = item.state
            state.state, state.finished, state.note = INTERRUPTED, time.time(), reason
            state.exit_code = item.process.returncode
            _record(self.dir, state)
            self.emit("interrupted", state)
            del self.active[index]
        for index in self.queue:
            self.runs[index].note = reason
        self.queue.clear()


def _describe(code: int) -> str:
    if code < 0:
        try:
            return f"{code} ({signal.Signals(-code).name})"
        except ValueError:
            return str(code)
    return str(code)


def _environment(
    exp: Experiment, the_plan: Plan, *, index: int, attempt: int, root: Path, gpus: list[str]
) -> dict[str, str]:
    env = dict(os.environ)
    # The container's CPU limit keeps numeric libraries from using every core; locally, their thread variables do.
    for name in _THREAD_VARIABLES:
        env.setdefault(name, str(the_plan.threads))
    env.update(exp.env)
    # `python` in a run's command is the interpreter running ml-jobs (its virtualenv), as in the run's image.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)])
    if the_plan.gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    env[layout.ENV_JOB_COMPLETION_INDEX] = str(index)
    env[layout.ENV_SWEEP_FILE] = str(the_plan.experiment_dir / META_DIR / layout.SWEEP_FILE)
    env[layout.ENV_RESULTS_ROOT] = str(root.resolve())
    env[layout.ENV_FAILURE_COUNT] = str(attempt - 1)
    # Locally there is no termination message, even when ml-jobs itself runs in a pod that sets the variable.
    env.pop(layout.ENV_TERMINATION_LOG, None)
    return env


def _record(exp_dir: Path, state: RunState) -> None:
    run_path = Path(layout.run_dir(exp_dir, state.index))
    run_path.mkdir(parents=True, exist_ok=True)
    _write_json(
        run_path / STATUS_FILE,
        {
            "state": state.state,
            "attempts": state.attempts,
            "exit_code": state.exit_code,
            "started": state.started,
            "finished": state.finished,
            "note": state.note,
        },
    )


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    with suppress(ProcessLookupError, PermissionError):  # the group is gone already
        os.killpg(process.pid, signum)


# ------------------------------------------------------------------------------------------------- display


class _View:
    """Live progress: an overall bar and a table of running runs; one line per finished run above them."""

    def __init__(self, console: Console, exp: Experiment, the_plan: Plan, runs: dict[int, RunState], live: bool):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = console
        self.exp = exp
        self.runs = runs
        self.experiment_dir = the_plan.experiment_dir
        self.use_live = live and console.is_terminal
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[summary]}"),
            TimeElapsedColumn(),
            console=console,
        )
        done = len(the_plan.done)
        self.task = self.progress.add_task(exp.name, total=exp.runs, completed=done, summary="")
        self.live: Any = None
        kept = f", {done} kept from before" if done else ""
        console.print(
            f"[bold]{exp.name}[/]: {exp.runs} runs, {the_plan.slots} at once ({the_plan.reason}){kept} "
            f"→ {the_plan.experiment_dir}"
        )

    def __enter__(self) -> _View:
        if self.use_live:
            from rich.live import Live

            self.live = Live(self._renderable(), console=self.console, refresh_per_second=8, transient=True)
            self.live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)

    def _renderable(self) -> Any:
        from rich.console import Group
        from rich.table import Table

        table = Table(box=None, show_header=True, header_style="dim", pad_edge=False)
        for column in ("run", "attempt", "time", "parameters"):
            table.add_column(column)
        for state in self.runs.values():
            if state.state == RUNNING:
                params = self.exp.sweep.params(state.index)
                table.add_row(
                    layout.run_name(state.index),
                    f"{state.tries}/{self.exp.retries + 1}",
                    f"{state.seconds or 0:.1f}s",
                    " ".join(f"{k}={_short(v)}" for k, v in params.items()),
                )
        return Group(self.progress, table)

    def refresh(self) -> None:
        counts = {s: sum(1 for r in self.runs.values() if r.state == s) for s in (SUCCEEDED, FAILED, RUNNING)}
        summary = f"[green]{counts[SUCCEEDED]} ok[/] [red]{counts[FAILED]} failed[/] {counts[RUNNING]} running"
        self.progress.update(self.task, completed=counts[SUCCEEDED] + counts[FAILED], summary=summary)
        if self.live is not None:
            self.live.update(self._renderable())

    def _objective(self, index: int) -> str:
        """``val_accuracy=0.9733`` from the run's metrics.json, if it wrote one."""
        from ml_jobs.results import format_number, read_run

        if self.exp.objective is None:
            return ""
        result = read_run(Path(layout.run_dir(self.experiment_dir, index)), index)
        if result.problem:
            return f"[yellow]({result.problem})[/]"
        value = result.metric(self.exp.objective.metric)
        if value is None:
            return f"[yellow](no {self.exp.objective.metric} in {layout.METRICS_FILE_NAME})[/]"
        return f"{self.exp.objective.metric}={format_number(value)}"

    def message(self, text: str) -> None:
        self.console.print(text)

    def event(self, event: str, state: RunState) -> None:
        name = layout.run_name(state.index)
        if event == "started":
            if not self.use_live:
                params = " ".join(f"{k}={_short(v)}" for k, v in self.exp.sweep.params(state.index).items())
                self.console.print(f"[dim]→ {name} attempt {state.attempts} {params}[/]")
            return
        took = f"{state.seconds:.1f}s" if state.seconds is not None else ""
        if event == "succeeded":
            self.console.print(f"[green]✓[/] {name} {took} {self._objective(state.index)}", highlight=False)
        elif event == "retrying":
            self.console.print(
                f"[yellow]↻[/] {name} {state.note} (try {state.tries + 1} of {self.exp.retries + 1})"
            )
        elif event == "failed":
            self.console.print(f"[red]✗[/] {name} {state.note}")
        elif event == "interrupted":
            self.console.print(f"[magenta]■[/] {name} {state.note}")
        self.refresh()


def _short(value: Any) -> str:
    text = _shim.format_value(value)
    return text if len(text) <= 24 else text[:21] + "..."
