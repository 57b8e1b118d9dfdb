"""``ls``: every experiment in the namespace with its runs counted by state, in three requests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ml_jobs import _labels as L
from ml_jobs import queueing
from ml_jobs.kube import queues, registry
from ml_jobs.kube.status import compute_runs, job_state, runs_from_record

if TYPE_CHECKING:
    from ml_jobs.kube._api import Api


@dataclass
class ExperimentSummary:
    """One line of ``ls``."""

    experiment: str
    revision: int
    job: str
    state: str
    runs: int
    counts: dict[str, int]
    submitted_at: str
    submitted_by: str
    image: str
    queue: str = ""  # the team queue (Kueue), if the Job is in one
    flavor: str = ""  # where Kueue admitted it (a flavor), once admitted


def list_experiments(api: Api) -> list[ExperimentSummary]:
    """Experiments in the namespace, latest revision each: registry list + Job list + pod list (3 requests), and
    a Workload list (a fourth) only where a Job is in a team queue."""
    from collections import Counter

    records = registry.read_all(api)
    if not records:
        return []
    jobs = {j["metadata"]["name"]: j for j in api.list("jobs", label_selector=f"{L.MANAGED_BY}={L.MANAGER}")}
    pods_by_job: dict[str, list[dict]] = {}
    for pod in api.list("pods", label_selector=L.EXPERIMENT):
        uid = (pod["metadata"].get("labels") or {}).get(L.CONTROLLER_UID)
        if uid:
            pods_by_job.setdefault(uid, []).append(pod)
    workloads: dict[str, dict] = {}
    if any(queueing.QUEUE_LABEL in (j["metadata"].get("labels") or {}) for j in jobs.values()):
        for w in api.list("workloads", label_selector=queues.JOB_UID_LABEL):
            workloads[(w["metadata"].get("labels") or {})[queues.JOB_UID_LABEL]] = w
    out = []
    for record in records:
        rev = record.latest()
        if rev is None:
            continue
        job = jobs.get(rev.job)
        if job is not None and rev.job_uid and job["metadata"].get("uid") != rev.job_uid:
            job = None
        if job is not None:
            state, _ = job_state(job)
            runs = compute_runs(job, pods_by_job.get(job["metadata"]["uid"], []), rev.runs)
            counts = dict(Counter(r.state for r in runs))
        else:
            state = rev.outcome or ("gone" if rev.state == registry.SUBMITTED else rev.state)
            counts = rev.counts or dict(
                Counter(r.state for r in runs_from_record(record.runs(rev.revision), rev.runs))
            )
        queue = ((job or {}).get("metadata", {}).get("labels") or {}).get(queueing.QUEUE_LABEL, "")
        flavor = ""
        if queue and job is not None:
            flavor = queues.workload_state(queue, workloads.get(job["metadata"]["uid"])).flavor
        out.append(
            ExperimentSummary(
                record.experiment,
                rev.revision,
                rev.job,
                state,
                rev.runs,
                counts,
                rev.submitted_at,
                rev.submitted_by,
                rev.image,
                queue,
                flavor,
            )
        )
    return out
