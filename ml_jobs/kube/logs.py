"""The log of one run: the latest attempt's pod, found with one label-selected list."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from ml_jobs import _labels as L
from ml_jobs.errors import UnknownExperimentError
from ml_jobs.kube import pending, registry
from ml_jobs.kube.status import _failures

if TYPE_CHECKING:
    from ml_jobs.kube._api import Api


def parse_run(run: str) -> int:
    """A run given as ``3`` or ``run-00003``."""
    from ml_jobs import layout

    if run.isdigit():
        return int(run)
    index = layout.run_index(run)
    if index is None:
        raise UnknownExperimentError(f"run {run!r}: give a run index (3) or a run name (run-00003)")
    return index


def run_logs(
    api: Api,
    experiment: str,
    run: str,
    *,
    follow: bool = False,
    revision: int | None = None,
    tail: int | None = None,
) -> Iterator[str]:
    """Lines of the log of run ``run`` (its latest attempt). Follows the stream with ``follow``.

    Raises:
        UnknownExperimentError: no such experiment, revision or run, or the run has no pod (yet / any more).
    """
    rev = registry.require(api, experiment).require(revision)
    index = parse_run(run)
    if not 0 <= index < rev.runs:
        raise UnknownExperimentError(f"experiment {experiment!r} has runs 0..{rev.runs - 1}, not {index}")
    job = api.get_or_none("jobs", rev.job)
    if job is None:
        raise UnknownExperimentError(
            f"the Job {rev.job} of experiment {experiment!r} is gone (TTL or cancel), and its pods' logs with it; "
            "results and the record remain (`ml-jobs results`, `ml-jobs ls`)"
        )
    selector = f"{L.CONTROLLER_UID}={job['metadata']['uid']},{L.COMPLETION_INDEX}={index}"
    pods = api.list("pods", label_selector=selector)
    if not pods:
        raise UnknownExperimentError(
            f"run {index} of {experiment!r} has no pod yet (see `ml-jobs status {experiment}`)"
        )
    pod = max(pods, key=lambda p: (_failures(p), p["metadata"].get("creationTimestamp") or ""))
    status = pod.get("status") or {}
    if status.get("phase") == "Pending" and not any(
        "running" in (cs.get("state") or {}) or "terminated" in (cs.get("state") or {})
        for cs in status.get("containerStatuses") or []
    ):
        causes = pending.explain([(index, pod)], job=job, events=[])
        why = "; ".join(c.text for c in causes)
        raise UnknownExperimentError(f"run {index} of {experiment!r} has not started: {why}")
    return api.log(pod["metadata"]["name"], follow=follow, tail_lines=tail)
