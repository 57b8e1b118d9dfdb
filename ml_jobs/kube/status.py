"""The state of every run of a sweep, from the Job and its pods, with a constant number of requests.

``sweep_status`` reads the registry (1 request), the Job (1), its pods with one label-selected list (1), and —
only when some run is pending — the namespace's events (1). Nothing is fetched per run: a sweep of 10,000 runs
costs the same four requests as a sweep of ten.

Per-run state, from the Indexed Job's ``completedIndexes`` / ``failedIndexes`` and the latest pod of each index:

``succeeded``  the index is in ``completedIndexes`` (or its pod succeeded and the controller has not counted it)
``failed``     the index is in ``failedIndexes`` (``backoffLimitPerIndex`` used up, or a ``FailIndex`` rule)
``running``    its latest pod runs (``attempts`` > 1 when this is a retry)
``retrying``   an attempt failed and the next one has not started running yet
``pending``    no attempt has started yet: see ``causes`` for why
``cancelled``  the Job ended (or was cancelled) before the run finished
``unknown``    the Job is gone and the registry has no record of the run's end

A finished run's metrics come from its container's termination message, where the entry shim copies
``metrics.json`` (see ``ml_jobs.layout.termination_message``): no results volume needed. With the volume mounted
here (``results_path``), the full ``metrics.json`` of each run is read too.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ml_jobs import _labels as L
from ml_jobs import layout, queueing
from ml_jobs.kube import pending as _pending
from ml_jobs.kube import queues, registry
from ml_jobs.kube.queues import QueueState

if TYPE_CHECKING:
    from ml_jobs.kube._api import Api

STATES = ("pending", "running", "retrying", "succeeded", "failed", "cancelled")


def parse_indexes(text: str | None) -> set[int]:
    """Parse the Job controller's interval notation: ``"0-2,5,7-8"`` -> {0, 1, 2, 5, 7, 8}."""
    out: set[int] = set()
    for raw in (text or "").split(","):
        part = raw.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def _time(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def _condition(obj: dict[str, Any] | None, kind: str) -> dict[str, Any] | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c.get("type") == kind and c.get("status") == "True":
            return c
    return None


@dataclass
class RunStatus:
    """One run of the sweep, as the cluster sees it now."""

    index: int
    state: str
    attempts: int = 0
    node: str | None = None
    pod: str | None = None
    started: dt.datetime | None = None
    finished: dt.datetime | None = None
    exit_code: int | None = None
    reason: str | None = None  # OOMKilled, Error, DeadlineExceeded, ...
    metrics: dict[str, Any] | None = None

    def duration(self, now: dt.datetime) -> float | None:
        """Seconds the latest attempt ran (so far)."""
        if self.started is None:
            return None
        return ((self.finished or now) - self.started).total_seconds()


@dataclass
class SweepStatus:
    """Every run of one revision of an experiment."""

    experiment: str
    revision: int
    job: str
    namespace: str
    job_state: str  # running, complete, failed: <reason>, suspended, gone, cancelled
    runs: list[RunStatus]
    objective: dict[str, str] = field(default_factory=dict)
    causes: list[_pending.Cause] = field(default_factory=list)
    finished: bool = False
    recorded: bool = False  # this call wrote the final record to the registry
    job_object: dict[str, Any] | None = field(default=None, repr=False)
    queue: QueueState | None = None  # where the sweep stands in its team queue (Kueue), while it runs

    @property
    def counts(self) -> dict[str, int]:
        c = Counter(r.state for r in self.runs)
        return {s: c[s] for s in STATES if c[s]}


def job_state(job: dict[str, Any] | None) -> tuple[str, bool]:
    """(state text, finished) of a Job."""
    if job is None:
        return "gone", True
    if (job.get("metadata") or {}).get("deletionTimestamp"):
        return "deleting", True
    if _condition(job, "Complete"):
        return "complete", True
    failed = _condition(job, "Failed")
    if failed:
        return f"failed: {failed.get('reason') or 'unknown'}", True
    if (job.get("spec") or {}).get("suspend"):
        return "suspended", False
    return "running", False


def _index(pod: dict[str, Any]) -> int | None:
    meta = pod.get("metadata") or {}
    value = (meta.get("annotations") or {}).get(L.COMPLETION_INDEX) or (meta.get("labels") or {}).get(
        L.COMPLETION_INDEX
    )
    return int(value) if value is not None and str(value).isdigit() else None


def _failures(pod: dict[str, Any]) -> int:
    value = ((pod.get("metadata") or {}).get("annotations") or {}).get(L.INDEX_FAILURE_COUNT)
    return int(value) if value is not None and str(value).isdigit() else 0


def _main_container(pod: dict[str, Any]) -> dict[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return statuses[0] if statuses else {}


def _termination_metrics(terminated: dict[str, Any]) -> dict[str, Any] | None:
    """The run's metrics, which the entry shim copies into its termination message (``layout`` has the format)."""
    return layout.parse_termination_message((terminated or {}).get("message"))


def _fill_from_pod(run: RunStatus, pod: dict[str, Any]) -> None:
    run.pod = (pod.get("metadata") or {}).get("name")
    run.node = (pod.get("spec") or {}).get("nodeName") or run.node
    state = _main_container(pod).get("state") or {}
    if "running" in state:
        run.started = _time(state["running"].get("startedAt"))
    elif "terminated" in state:
        term = state["terminated"]
        run.started = _time(term.get("startedAt"))
        run.finished = _time(term.get("finishedAt"))
        run.exit_code = term.get("exitCode")
        run.reason = term.get("reason")
        run.metrics = _termination_metrics(term)
    if (pod.get("status") or {}).get("reason") and run.reason is None:
        run.reason = pod["status"]["reason"]  # Evicted, DeadlineExceeded, ...


def compute_runs(job: dict[str, Any] | None, pods: list[dict[str, Any]], runs: int) -> list[RunStatus]:
    """Per-run state of an Indexed Job with ``runs`` completions, from the Job and all its pods."""
    status = (job or {}).get("status") or {}
    completed = parse_indexes(status.get("completedIndexes"))
    failed = parse_indexes(status.get("failedIndexes"))
    _, finished = job_state(job)
    by_index: dict[int, list[dict[str, Any]]] = {}
    for pod in pods:
        i = _index(pod)
        if i is not None and 0 <= i < runs:
            by_index.setdefault(i, []).append(pod)

    out = []
    for i in range(runs):
        attempts = sorted(
            by_index.get(i, []),
            key=lambda p: (_failures(p), (p.get("metadata") or {}).get("creationTimestamp") or ""),
        )
        run = RunStatus(index=i, state="pending")
        if attempts:
            latest = attempts[-1]
            run.attempts = max(len(attempts), _failures(latest) + 1)
            phase = (latest.get("status") or {}).get("phase")
            done = next((p for p in attempts if (p.get("status") or {}).get("phase") == "Succeeded"), None)
            _fill_from_pod(run, done or latest)
            prior_failures = _failures(latest) > 0 or any(
                (p.get("status") or {}).get("phase") == "Failed" for p in attempts[:-1]
            )
            if i in completed or done is not None:
                run.state = "succeeded"
            elif i in failed:
                run.state = "failed"
            elif phase == "Running":
                run.state = "running"
            elif phase == "Failed":
                run.state = "cancelled" if finished else "retrying"
            elif finished:
                run.state = "cancelled"
            else:
                run.state = "retrying" if prior_failures else "pending"
        elif i in completed:
            run.state = "succeeded"
        elif i in failed:
            run.state = "failed"
        elif finished:
            run.state = "cancelled"
        out.append(run)
    return out


def runs_from_record(rows: list[dict[str, Any]], runs: int) -> list[RunStatus]:
    """Runs as the registry recorded them when the sweep ended (the Job may be long gone)."""
    by_index = {row["index"]: row for row in rows}
    out = []
    for i in range(runs):
        row = by_index.get(i) or {}
        out.append(
            RunStatus(
                index=i,
                state=row.get("state") or "unknown",
                attempts=row.get("attempts") or 0,
                node=row.get("node"),
                exit_code=row.get("exitCode"),
                metrics=row.get("metrics"),
            )
        )
    return out


def record_rows(runs: list[RunStatus], params: list[Any] | None) -> list[dict[str, Any]]:
    """Registry rows for ``runs`` (``params`` as an older record stored them, index-aligned, if any; else none:
    they are derived from the spec)."""
    rows = []
    for r in runs:
        rows.append(
            {
                "index": r.index,
                "params": params[r.index] if params and r.index < len(params) else None,
                "state": r.state,
                "node": r.node,
                "exitCode": r.exit_code,
                "attempts": r.attempts,
                "metrics": r.metrics,
            }
        )
    return rows


def _attach_metrics(runs: list[RunStatus], root: str, experiment: str, revision: int) -> None:
    from pathlib import Path

    from ml_jobs import layout, results

    exp_dir = layout.experiment_dir_name(experiment, revision)
    if not (Path(root) / exp_dir).is_dir():
        return
    found = {r.index: r.metrics for r in results.read_results(root, exp_dir) if r.metrics}
    for run in runs:
        if run.index in found:
            run.metrics = {**(run.metrics or {}), **found[run.index]}


def pod_selector(job: dict[str, Any]) -> str:
    """The label selector of a Job's pods: its controller uid, which the Job controller sets on each pod."""
    return f"{L.CONTROLLER_UID}={job['metadata']['uid']}"


def finalize(
    api: Api, record: registry.Record, rev: registry.Revision, runs: list[RunStatus], *, state: str, outcome: str
) -> registry.Record:
    """Write how the revision ended (per-run node, exit code, attempts, metrics) into the registry (1 request)."""
    params = [row.get("params") for row in record.runs(rev.revision)] or None
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    counts = Counter(r.state for r in runs)
    revisions = []
    for r in record.revisions:
        if r.revision != rev.revision:
            revisions.append(r)
            continue
        ended = {
            **r.__dict__,
            "state": state,
            "outcome": outcome,
            "finished_at": now,
            "counts": {s: counts[s] for s in STATES if counts[s]},
        }
        revisions.append(registry.Revision.from_json(ended))
    try:
        return registry.update(api, record, revisions, runs={rev.revision: record_rows(runs, params)})
    except registry.RunsTableTooLarge:
        # The end and the counts are recorded all the same; the per-run table stays as it was.
        return registry.update(api, record, revisions)


def _nodes(api: Api) -> list[dict[str, Any]] | None:
    """The cluster's nodes, or None where the caller may not list them (a team's submitters may not: the
    cordoned-node hint is then left out)."""
    from ml_jobs.errors import ForbiddenError

    try:
        return api.list("nodes")
    except ForbiddenError:
        return None


def sweep_status(
    api: Api,
    experiment: str,
    *,
    revision: int | None = None,
    record: registry.Record | None = None,
    explain: bool = True,
    write_record: bool = True,
    results_path: str | None = None,
) -> SweepStatus:
    """Read the state of every run of ``experiment`` (latest revision unless ``revision`` is given).

    With ``results_path`` (where the results volume is mounted here), each run's metrics are read from its
    ``metrics.json`` too — file reads, no requests — and recorded with the rest when the sweep ends.

    Requests: registry (1, skipped if ``record`` is passed), Job (1), pods (1, if the Job exists and its end is
    not recorded yet), events (1, only if a run is pending and ``explain``), nodes (1, only if nodes are cordoned
    where a run could go, to name the one that would take it), for a sweep in a team queue its
    Workload (1) and, while it waits there, its position (1, Kueue's visibility API), and one registry update the
    first time the sweep is seen finished (``write_record``).
    """
    if record is None:
        record = registry.require(api, experiment)
    rev = record.require(revision)

    job = api.get_or_none("jobs", rev.job)
    if job is not None and rev.job_uid and job["metadata"].get("uid") != rev.job_uid:
        job = None  # a Job of the same name that this revision did not create
    state, finished = job_state(job)
    if job is None:
        rows = record.runs(rev.revision)
        runs = runs_from_record(rows, rev.runs)  # "unknown" where nothing was recorded
        if rev.state in {registry.FINISHED, registry.CANCELLED, registry.GONE}:
            state = rev.outcome or rev.state
        result = SweepStatus(
            experiment, rev.revision, rev.job, api.namespace, state, runs, rev.objective, finished=True
        )
        if write_record and rev.state == registry.SUBMITTED:
            # Removed (TTL, kubectl delete) before anyone saw how it ended: say so in the record, once.
            finalize(api, record, rev, runs, state=registry.GONE, outcome="gone before its end was recorded")
            result.recorded = True
        return result

    rows = record.runs(rev.revision) if finished and rev.state == registry.FINISHED else []
    if rows and not results_path:
        # Ended and recorded: where and how each run ended is in the registry, so a finished sweep of 10,000 runs
        # does not read its 10,000 pods again (the Job's status alone would lose nodes, attempts, metrics).
        runs = runs_from_record(rows, rev.runs)
        result = SweepStatus(experiment, rev.revision, rev.job, api.namespace, state, runs, rev.objective)
        result.finished, result.job_object = True, job
        return result
    pods = api.list("pods", label_selector=pod_selector(job))
    runs = compute_runs(job, pods, rev.runs)
    if results_path:
        _attach_metrics(runs, results_path, experiment, rev.revision)
    result = SweepStatus(experiment, rev.revision, rev.job, api.namespace, state, runs, rev.objective)
    result.finished = finished
    result.job_object = job
    waiting = [r for r in runs if r.state in {"pending", "retrying"}]
    queue = (job["metadata"].get("labels") or {}).get(queueing.QUEUE_LABEL)
    if queue and not finished:  # only for a queued sweep: its Workload, and while it waits its position
        result.queue = queues.read_state(api, queue, job)
    if waiting and result.queue is not None and (job.get("spec") or {}).get("suspend"):
        # Not admitted (yet, or any more): the queue says why, for every waiting run.
        result.causes = [_pending.Cause(result.queue.line, len(waiting))]
    elif waiting and explain and not finished:
        pods_by_name = {p["metadata"]["name"]: p for p in pods}
        events = api.list("events")
        held = [(r.index, pods_by_name.get(r.pod or "")) for r in waiting]
        result.causes = _pending.explain(held, job=job, events=events)
        if any(_pending.CORDONED in c.text for c in result.causes) and (nodes := _nodes(api)) is not None:
            result.causes = _pending.explain(held, job=job, events=events, nodes=nodes)
    if finished and write_record and rev.state in {registry.SUBMITTED, registry.SUBMITTING}:
        finalize(api, record, rev, runs, state=registry.FINISHED, outcome=state)
        result.recorded = True
    return result
