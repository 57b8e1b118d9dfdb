"""Names, paths and the environment contract every run sees — the one definition.

The renderer, the local backend, the Kubernetes backend, the results reader and the in-pod entry shim all take
run names, the results layout and the environment variable names from here.

This module uses the standard library only and imports nothing from ``ml_jobs``: it travels into every pod
beside the entry shim (in the sweep ConfigMap), because the container image is the user's and cannot be assumed
to have ``ml_jobs`` installed. Like the shim, it runs on Python 3.8 and later (the image's interpreter).

Results layout (``root`` is the results volume's mount path in a pod, ``--results-dir`` locally)::

    <root>/<experiment>/                 one directory per experiment (``<name>-r<N>`` from revision 2 on)
    <root>/<experiment>/<run>/           RESULTS_DIR of one run, e.g. run-00003
    <root>/<experiment>/<run>/params.json      the run's parameters (written before the command starts)
    <root>/<experiment>/<run>/run.json         index, name, attempt, host of the latest attempt
    <root>/<experiment>/<run>/metrics.json     written by the run: {"metric": number, ...}
    <root>/<experiment>/<run>/checkpoint/      CHECKPOINT_DIR: the same directory for every retry of the run
    <root>/<experiment>/<run>/logs/attempt-N.log   local runs: the output of attempt N (:func:`attempt_log`)

In a pod, the shim also copies the run's metrics into the container's termination message (see
:func:`termination_message`), so ``ml-jobs status`` shows them from the pod's status, without the results volume.
"""

from __future__ import annotations

import json
import os
import posixpath
from typing import Any

__all__ = [
    "CHECKPOINT_DIR_NAME",
    "CONFIG_MOUNT_PATH",
    "ENTRY_FILE",
    "ENV_ATTEMPT",
    "ENV_CHECKPOINT_DIR",
    "ENV_EXPERIMENT",
    "ENV_FAILURE_COUNT",
    "ENV_INDEX",
    "ENV_JOB_COMPLETION_INDEX",
    "ENV_METRICS_FILE",
    "ENV_PARAMS_FILE",
    "ENV_PARAM_PREFIX",
    "ENV_RESULTS_DIR",
    "ENV_RESULTS_ROOT",
    "ENV_RUN_NAME",
    "ENV_SWEEP_FILE",
    "ENV_TERMINATION_LOG",
    "INDEX_FAILURE_COUNT_ANNOTATION",
    "LAYOUT_FILE",
    "LOCAL_RESULTS_DIR",
    "LOGS_DIR_NAME",
    "MAX_RUNS",
    "METRICS_FILE_NAME",
    "PARAMS_FILE_NAME",
    "RUN_FILE_NAME",
    "SWEEP_FILE",
    "TERMINATION_LOG_PATH",
    "TERMINATION_MESSAGE_LIMIT",
    "attempt_log",
    "checkpoint_dir",
    "experiment_dir",
    "experiment_dir_name",
    "job_name",
    "param_env_name",
    "parse_termination_message",
    "run_dir",
    "run_index",
    "run_name",
    "termination_message",
]

# Where `ml-jobs run --local` puts the results root unless told (the local stand-in for the results volume).
LOCAL_RESULTS_DIR = "runs"

# Kubernetes caps an Indexed Job's completions at 100,000; run names are sized for that.
MAX_RUNS = 100_000
_RUN_PREFIX = "run-"
_RUN_DIGITS = 5

# Files of one run, inside its RESULTS_DIR.
PARAMS_FILE_NAME = "params.json"
METRICS_FILE_NAME = "metrics.json"
RUN_FILE_NAME = "run.json"
CHECKPOINT_DIR_NAME = "checkpoint"
# Local runs only: each attempt's stdout and stderr (in a pod, the container log holds them).
LOGS_DIR_NAME = "logs"

# The sweep ConfigMap's keys, and where it is mounted in every pod.
CONFIG_MOUNT_PATH = "/etc/ml-jobs"
SWEEP_FILE = "sweep.json"
ENTRY_FILE = "entry.py"
LAYOUT_FILE = "layout.py"

# The environment contract: what every run sees, in the cluster and locally.
ENV_INDEX = "RUN_INDEX"  # 0-based index of the run in the sweep
ENV_RUN_NAME = "RUN_NAME"  # run-00003
ENV_EXPERIMENT = "EXPERIMENT"  # the experiment directory name (Job name): digits-sweep, digits-sweep-r2
ENV_ATTEMPT = "RUN_ATTEMPT"  # 1 for the first try of a run, 2 for its first retry, ...
ENV_PARAMS_FILE = "PARAMS_FILE"  # path of params.json
ENV_PARAM_PREFIX = "PARAM_"  # PARAM_LR=0.01: one variable per parameter, name upper-cased
ENV_RESULTS_DIR = "RESULTS_DIR"  # <root>/<experiment>/<run>
ENV_CHECKPOINT_DIR = "CHECKPOINT_DIR"  # <root>/<experiment>/<run>/checkpoint, stable across retries
ENV_METRICS_FILE = "METRICS_FILE"  # <root>/<experiment>/<run>/metrics.json: the run writes it

# Read by the entry shim (set by the Job controller, the pod template, or the local backend).
ENV_JOB_COMPLETION_INDEX = "JOB_COMPLETION_INDEX"
ENV_SWEEP_FILE = "ML_JOBS_SWEEP_FILE"  # default: <CONFIG_MOUNT_PATH>/sweep.json
ENV_RESULTS_ROOT = "ML_JOBS_RESULTS_ROOT"  # default: the results mount path recorded in sweep.json
ENV_FAILURE_COUNT = "ML_JOBS_INDEX_FAILURE_COUNT"  # from the pod annotation the Job controller keeps per index
# Set by the renderer in pods only (locally unset): where the shim writes the run's metrics when the command exits.
ENV_TERMINATION_LOG = "ML_JOBS_TERMINATION_LOG"

# The container's terminationMessagePath, and the most the kubelet keeps of it (it truncates beyond 4096 bytes).
TERMINATION_LOG_PATH = "/dev/termination-log"
TERMINATION_MESSAGE_LIMIT = 4096

# The annotation the Job controller sets on pods of a Job with backoffLimitPerIndex.
INDEX_FAILURE_COUNT_ANNOTATION = "batch.kubernetes.io/job-index-failure-count"


def run_name(index: int) -> str:
    """The name of run ``index``: ``run-00003``. Fixed width, so names sort in index order."""
    if not 0 <= index < MAX_RUNS:
        raise ValueError(f"run index {index} outside 0..{MAX_RUNS - 1}")
    return f"{_RUN_PREFIX}{index:0{_RUN_DIGITS}d}"


def run_index(name: str) -> int | None:
    """The index of a run directory name, or ``None`` if ``name`` is not one (``run-00003`` -> 3)."""
    if not name.startswith(_RUN_PREFIX):
        return None
    digits = name[len(_RUN_PREFIX) :]
    if len(digits) != _RUN_DIGITS or not digits.isdigit():
        return None
    return int(digits)


def job_name(experiment: str, revision: int = 1) -> str:
    """The Job's name: the experiment's name for revision 1, ``<name>-r<N>`` for revision N."""
    if revision < 1:
        raise ValueError(f"revision must be ≥ 1, got {revision}")
    return experiment if revision == 1 else f"{experiment}-r{revision}"


def experiment_dir_name(experiment: str, revision: int = 1) -> str:
    """The experiment's directory under the results root: the Job name, so revisions never mix runs."""
    return job_name(experiment, revision)


def experiment_dir(root: str, experiment: str, revision: int = 1) -> str:
    """``<root>/<experiment>`` (``<root>/<experiment>-r<N>`` for revision N)."""
    return posixpath.join(root, experiment_dir_name(experiment, revision))


def run_dir(experiment_dir: str | os.PathLike[str], index: int) -> str:
    """``<experiment_dir>/<run>``: the run's RESULTS_DIR, under :func:`experiment_dir` (also a local ``Path``)."""
    return posixpath.join(experiment_dir, run_name(index))


def checkpoint_dir(run_dir: str | os.PathLike[str]) -> str:
    """The run's CHECKPOINT_DIR. It depends on the index only, so every retry of a run finds the last one's."""
    return posixpath.join(run_dir, CHECKPOINT_DIR_NAME)


def attempt_log(run_dir: str | os.PathLike[str], attempt: int) -> str:
    """``<run_dir>/logs/attempt-<N>.log``: where a local run's attempt N writes its output."""
    return posixpath.join(os.fspath(run_dir), LOGS_DIR_NAME, f"attempt-{attempt}.log")


def param_env_name(param: str) -> str:
    """The environment variable that carries parameter ``param``: ``lr`` -> ``PARAM_LR``."""
    return ENV_PARAM_PREFIX + param.upper()


# ------------------------------------------------------------------------------ metrics in the pod's status


def termination_message(
    metrics: dict[str, Any], first: str | None = None, limit: int = TERMINATION_MESSAGE_LIMIT
) -> str | None:
    """The run's metrics as its container's termination message: one compact JSON object of at most ``limit``
    bytes, read back by :func:`parse_termination_message`.

    Key ``first`` (the objective's metric) comes first, the others follow in their order. A key that would not
    fit is left out (the next, smaller ones may still fit), never cut: the message is always valid JSON. Values
    JSON cannot hold (NaN, infinities) are left out too. ``None`` when no key fits.
    """
    keys = [first] if first is not None and first in metrics else []
    keys += [k for k in metrics if k != first]
    pieces: list[str] = []
    size = 2  # the braces
    for key in keys:
        try:
            piece = json.dumps({str(key): metrics[key]}, separators=(",", ":"), allow_nan=False)[1:-1]
        except (TypeError, ValueError):
            continue
        extra = len(piece.encode("utf-8")) + (1 if pieces else 0)
        if size + extra <= limit:
            pieces.append(piece)
            size += extra
    return "{" + ",".join(pieces) + "}" if pieces else None


def parse_termination_message(text: str | None) -> dict[str, Any] | None:
    """The metrics in a container's termination message, or ``None`` when it holds none (empty, not JSON, or
    not a JSON object)."""
    try:
        doc = json.loads(text or "")
    except ValueError:
        return None
    return doc if isinstance(doc, dict) else None
