"""The Kubernetes backend of ml_jobs: submit a sweep, watch it, read its logs and results, cancel it.

Importing this package imports the official ``kubernetes`` client lazily (inside the calls), so the CLI can
import it cheaply; commands call :func:`connect` first.
"""

from __future__ import annotations

from ml_jobs.kube._api import Api
from ml_jobs.kube._cancel import CancelResult, cancel
from ml_jobs.kube._config import Target, load
from ml_jobs.kube._submit import Decision, SubmitResult, check, decide, submit
from ml_jobs.kube.listing import ExperimentSummary, list_experiments
from ml_jobs.kube.logs import run_logs
from ml_jobs.kube.pending import Cause
from ml_jobs.kube.results import read_results
from ml_jobs.kube.status import RunStatus, SweepStatus, sweep_status
from ml_jobs.results import ExperimentResults, plot, to_csv

__all__ = [
    "Api",
    "CancelResult",
    "Cause",
    "Decision",
    "ExperimentResults",
    "ExperimentSummary",
    "RunStatus",
    "SubmitResult",
    "SweepStatus",
    "Target",
    "cancel",
    "check",
    "connect",
    "decide",
    "list_experiments",
    "load",
    "plot",
    "read_results",
    "run_logs",
    "submit",
    "sweep_status",
    "to_csv",
]


def connect(
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    namespace: str | None = None,
    timeout: float = 30.0,
) -> Api:
    """An :class:`Api` for the cluster and namespace kubectl would pick with the same flags."""
    target = load(kubeconfig=kubeconfig, context=context, namespace=namespace)
    return Api(target.configuration, target.namespace, timeout=timeout)
