"""The entry shim: turns a run index into the run's parameters and environment, then runs the run's command.

One sweep is one Indexed Job; the sweep ConfigMap holds the sweep *definition* (``sweep.json``), this file
(``entry.py``) and ``layout.py``, mounted at ``/etc/ml-jobs``. Each pod starts
``python3 /etc/ml-jobs/entry.py -- COMMAND ARGS...``; the shim reads ``JOB_COMPLETION_INDEX``, derives the run's
parameters from the definition, prepares its results and checkpoint directories, writes ``params.json``, sets
the environment contract and runs the command as its child, forwarding signals to it and exiting with its
exit status (128 + N when the command dies of signal N, as a container runtime reports it). In a pod
(``ML_JOBS_TERMINATION_LOG`` set) it then copies the run's ``metrics.json`` into the container's termination
message, where ``ml-jobs status`` reads it from the pod's status.

Why a child and not ``exec``: the shim is PID 1 of the container. The kernel does not apply default signal
actions to PID 1, so a training script exec'd there that installs no SIGTERM handler would ignore the SIGTERM
of a drain or a deletion and only die by SIGKILL a grace period later — losing its chance to checkpoint. The
shim forwards SIGTERM (and SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2) and, as PID 1, reaps orphans.

The local backend runs this very file the same way, and ``Experiment.sweep.params(i)`` calls the same
functions, so the cluster, the local backend and the renderer agree on every index by construction.

Standard library only, no ``ml_jobs`` imports beyond ``layout`` (which travels beside it): the image is the
user's, so it also runs on the image's interpreter: Python 3.8 or later (no ``zip(strict=)``, no ``match``,
no ``X | Y`` outside annotations). Parameters of random sweeps come from a hash of (seed, index, name), so run
``i`` is computed in constant time without drawing runs ``0..i-1``, the same on every Python and platform.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import posixpath
import re
import signal
import socket
import subprocess
import sys
import time
from typing import Any

if __package__:
    from ml_jobs import layout
else:  # run as /etc/ml-jobs/entry.py: layout.py lies beside it (sys.path[0])
    import layout  # type: ignore[no-redef]

FORMAT_VERSION = 1
SIGNIFICANT_DIGITS = 6  # random floats are rounded so logs, labels and file names stay readable
TEMPLATE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_EXIT_SHIM_ERROR = 2
_EXIT_NOT_FOUND = 127


# ---------------------------------------------------------------------------------------------------- sweeps
# A sweep node is one of: {"grid": {name: [values]}}, {"random": {"seed", "count", "params": {name: dist}}},
# {"list": [{name: value}]}, {"product": [node, ...]}; ``None`` is a single run without parameters.
# Grids and products enumerate like itertools.product: the last axis varies fastest.


def size(node: dict[str, Any] | None) -> int:
    """Number of runs the sweep node describes."""
    if node is None:
        return 1
    if "grid" in node:
        return math.prod(len(values) for values in node["grid"].values())
    if "random" in node:
        return int(node["random"]["count"])
    if "list" in node:
        return len(node["list"])
    if "product" in node:
        return math.prod(size(factor) for factor in node["product"])
    raise ValueError(f"unknown sweep node {sorted(node)}")


def params(node: dict[str, Any] | None, index: int) -> dict[str, Any]:
    """The parameters of run ``index`` of the sweep node (deterministic, constant time per parameter)."""
    total = size(node)
    if not 0 <= index < total:
        raise IndexError(f"run index {index} outside 0..{total - 1}")
    if node is None:
        return {}
    if "grid" in node:
        axes = list(node["grid"].items())
        digits = _mixed_radix(index, [len(values) for _, values in axes])
        # No zip(strict=True): it needs Python 3.10 and images may have 3.8; lengths are equal by construction.
        return {name: values[d] for (name, values), d in zip(axes, digits)}  # noqa: B905
    if "random" in node:
        spec = node["random"]
        return {name: _draw(dist, spec["seed"], index, name) for name, dist in spec["params"].items()}
    if "list" in node:
        return dict(node["list"][index])
    if "product" in node:
        factors = node["product"]
        digits = _mixed_radix(index, [size(factor) for factor in factors])
        merged: dict[str, Any] = {}
        for factor, d in zip(factors, digits):  # noqa: B905 - see above
            merged.update(params(factor, d))
        return merged
    raise ValueError(f"unknown sweep node {sorted(node)}")


def _mixed_radix(index: int, radices: list[int]) -> list[int]:
    digits = []
    for radix in reversed(radices):
        index, digit = divmod(index, radix)
        digits.append(digit)
    return digits[::-1]


def _unit(seed: int, index: int, name: str) -> float:
    """A uniform draw in [0, 1) from (seed, index, name): 53 bits of SHA-256."""
    digest = hashlib.sha256(f"{seed}\x00{index}\x00{name}".encode()).digest()
    return (int.from_bytes(digest[:8], "big") >> 11) / float(1 << 53)


def _round(x: float, low: float, high: float) -> float:
    return min(max(float(f"{x:.{SIGNIFICANT_DIGITS}g}"), low), high)


def _draw(dist: dict[str, Any], seed: int, index: int, name: str) -> Any:
    u = _unit(seed, index, name)
    kind, bounds = next(iter(dist.items()))
    if kind == "choice":
        return bounds[min(int(u * len(bounds)), len(bounds) - 1)]
    low, high = bounds
    if kind == "uniform":
        return _round(low + (high - low) * u, low, high)
    if kind == "loguniform":
        return _round(math.exp(math.log(low) + (math.log(high) - math.log(low)) * u), low, high)
    if kind == "randint":
        return min(low + int(u * (high - low + 1)), high)
    raise ValueError(f"unknown distribution {kind!r}")


# ---------------------------------------------------------------------------------------- the environment


def format_value(value: Any) -> str:
    """A parameter as it appears in an environment variable or a templated argument."""
    return value if isinstance(value, str) else json.dumps(value)


def substitute(arg: str, run_params: dict[str, Any]) -> str:
    """Replace ``{{ name }}`` in one argument by the run's parameter ``name``."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in run_params:
            raise KeyError(name)
        return format_value(run_params[name])

    return TEMPLATE.sub(one, arg)


def run_environment(definition: dict[str, Any], index: int, root: str, attempt: int) -> dict[str, str]:
    """The environment contract of run ``index`` (without the inherited environment)."""
    experiment = definition["experiment"]
    results = layout.run_dir(posixpath.join(root, experiment), index)
    env = {
        layout.ENV_INDEX: str(index),
        layout.ENV_JOB_COMPLETION_INDEX: str(index),
        layout.ENV_RUN_NAME: layout.run_name(index),
        layout.ENV_EXPERIMENT: experiment,
        layout.ENV_ATTEMPT: str(attempt),
        layout.ENV_RESULTS_DIR: results,
        layout.ENV_CHECKPOINT_DIR: layout.checkpoint_dir(results),
        layout.ENV_PARAMS_FILE: posixpath.join(results, layout.PARAMS_FILE_NAME),
        layout.ENV_METRICS_FILE: posixpath.join(results, layout.METRICS_FILE_NAME),
    }
    for name, value in params(definition["sweep"], index).items():
        env[layout.param_env_name(name)] = format_value(value)
    return env


def _write_json(path: str, doc: Any) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=2)  # key order kept: parameters in the sweep's order
        f.write("\n")
    os.replace(tmp, path)


def _say(message: str) -> None:
    print(f"ml-jobs entry: {message}", file=sys.stderr, flush=True)


def _fail(message: str, code: int = _EXIT_SHIM_ERROR) -> int:
    _say(message)
    return code


def main(argv: list[str] | None = None) -> int:
    """``entry.py -- COMMAND [ARGS...]``: prepare run ``$JOB_COMPLETION_INDEX``, run its command, exit likewise."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        return _fail("usage: entry.py -- COMMAND [ARGS...]")
    raw_index = os.environ.get(layout.ENV_JOB_COMPLETION_INDEX, "")
    if not raw_index.isdigit():
        return _fail(f"{layout.ENV_JOB_COMPLETION_INDEX} must be a run index, got {raw_index!r}")
    index = int(raw_index)
    sweep_file = os.environ.get(layout.ENV_SWEEP_FILE) or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), layout.SWEEP_FILE
    )
    try:
        with open(sweep_file, encoding="utf-8") as f:
            definition = json.load(f)
    except (OSError, ValueError) as e:
        return _fail(f"cannot read the sweep definition {sweep_file}: {e}")
    if definition.get("version") != FORMAT_VERSION:
        return _fail(
            f"{sweep_file}: format version {definition.get('version')!r}, this shim reads {FORMAT_VERSION}"
        )
    total = size(definition["sweep"])
    if index >= total:
        return _fail(f"run index {index} outside the sweep's 0..{total - 1}")

    root = os.environ.get(layout.ENV_RESULTS_ROOT) or definition["results_root"]
    failures = os.environ.get(layout.ENV_FAILURE_COUNT, "")
    attempt = int(failures) + 1 if failures.isdigit() else 1
    run_env = run_environment(definition, index, root, attempt)
    run_params = params(definition["sweep"], index)
    try:
        command = [substitute(arg, run_params) for arg in argv]
    except KeyError as e:
        return _fail(f"the command refers to {{{{ {e.args[0]} }}}}, which is not a parameter of this sweep")

    results = run_env[layout.ENV_RESULTS_DIR]
    try:
        os.makedirs(run_env[layout.ENV_CHECKPOINT_DIR], exist_ok=True)
        _write_json(run_env[layout.ENV_PARAMS_FILE], run_params)
        _write_json(
            os.path.join(results, layout.RUN_FILE_NAME),
            {
                "experiment": definition["experiment"],
                "index": index,
                "run": run_env[layout.ENV_RUN_NAME],
                "attempt": attempt,
                "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "params": run_params,
                "command": command,
            },
        )
    except OSError as e:
        return _fail(f"cannot prepare {results}: {e}")

    env = dict(os.environ)
    env.update(run_env)
    sys.stdout.flush()
    sys.stderr.flush()
    status = supervise(command, env)
    termination_log = os.environ.get(layout.ENV_TERMINATION_LOG)
    if termination_log:  # set in pods only
        try:
            report_metrics(run_env[layout.ENV_METRICS_FILE], definition.get("objective"), termination_log)
        except Exception as e:  # reporting never changes the run's exit status
            _say(f"metrics not reported in the pod status: {type(e).__name__}: {e}")
    return status


def report_metrics(metrics_file: str, objective: str | None, termination_log: str) -> None:
    """Copy the run's metrics into the container's termination message, so ``ml-jobs status`` reads them from the
    pod's status (``state.terminated.message``) without the results volume.

    Best effort: no metrics file writes nothing, and nothing here changes the run's exit status — a problem is
    one line on stderr.
    """
    try:
        with open(metrics_file, encoding="utf-8") as f:
            metrics = json.load(f)
    except FileNotFoundError:
        return  # the run wrote no metrics (it may have failed first)
    except (OSError, ValueError) as e:
        _say(f"metrics not reported in the pod status: cannot read {metrics_file}: {e}")
        return
    if not isinstance(metrics, dict):
        _say(f"metrics not reported in the pod status: {metrics_file} is not a JSON object")
        return
    message = layout.termination_message(metrics, objective)
    if message is None:
        return
    try:
        with open(termination_log, "w", encoding="utf-8") as f:
            f.write(message)
    except OSError as e:
        _say(f"metrics not reported in the pod status: cannot write {termination_log}: {e}")


FORWARDED_SIGNALS = ("SIGTERM", "SIGINT", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


def supervise(command: list[str], env: dict[str, str]) -> int:
    """Run ``command`` as a child, forward signals to it, and return its exit status the way a shell would."""
    try:
        child = subprocess.Popen(command, env=env)
    except FileNotFoundError:
        return _fail(f"command not found: {command[0]}", _EXIT_NOT_FOUND)
    except OSError as e:
        return _fail(f"cannot run {command[0]}: {e}", _EXIT_NOT_FOUND - 1)

    def forward(signum: int, frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):  # it has just exited
            os.kill(child.pid, signum)

    for name in FORWARDED_SIGNALS:
        signal.signal(getattr(signal, name), forward)

    if os.getpid() != 1:
        return _exit_status(child.wait())
    # PID 1 adopts every orphan of the container: reap them all while waiting for the command itself.
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:  # pragma: no cover - the command was reaped elsewhere
            return _exit_status(child.wait())
        if pid == child.pid:
            if os.WIFSIGNALED(status):
                return 128 + os.WTERMSIG(status)
            return os.WEXITSTATUS(status)


def _exit_status(returncode: int) -> int:
    """Popen's return code (negative for a signal) as a process exit status: 128 + N for signal N."""
    return 128 - returncode if returncode < 0 else returncode


if __name__ == "__main__":
    sys.exit(main())
