"""Cancel a sweep: record how far it got, then delete its Job and let the garbage collector stop the pods."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ml_jobs.kube import registry
from ml_jobs.kube.status import finalize, sweep_status

if TYPE_CHECKING:
    from ml_jobs.kube._api import Api

DEFAULT_GRACE_SECONDS = 30
_UNFINISHED = {"pending", "running", "retrying"}  # the pod default when terminationGracePeriodSeconds is not set


@dataclass
class CancelResult:
    """What ``cancel`` did, for the CLI to explain."""

    experiment: str
    revision: int
    job: str
    deleted: bool  # False: the Job was already gone
    running: int
    waiting: int
    finished: int
    grace_seconds: int

    def explain(self) -> str:
        if not self.deleted:
            return (
                f"experiment {self.experiment} revision {self.revision}: Job {self.job} was already gone; "
                "its record is kept in the registry"
            )
        return (
            f"cancelled experiment {self.experiment} revision {self.revision}: deleted Job {self.job}. "
            f"{self.running} running run(s) get SIGTERM and {self.grace_seconds}s to stop before SIGKILL; "
            f"{self.waiting} run(s) that had not started never will; {self.finished} finished run(s) keep "
            "their results on the results volume; the record stays in the registry (`ml-jobs ls`)"
        )


def cancel(api: Api, experiment: str, *, revision: int | None = None) -> CancelResult:
    """Cancel the latest (or the given) revision of ``experiment``.

    The per-run state at this moment is written to the registry first, then the Job is deleted with
    ``propagationPolicy=Background``: the garbage collector deletes its pods (each gets its
    ``terminationGracePeriodSeconds`` between SIGTERM and SIGKILL) and the sweep ConfigMap it owns.
    """
    record = registry.require(api, experiment)
    status = sweep_status(api, experiment, revision=revision, record=record, explain=False, write_record=False)
    rev = record.get(status.revision)
    assert rev is not None
    counts = status.counts
    grace = DEFAULT_GRACE_SECONDS
    if status.job_state == "gone":
        if rev.state == registry.SUBMITTING:
            # An interrupted submit: its ConfigMap may exist without a Job.
            if rev.config_map:
                api.delete("configmaps", rev.config_map)
            finalize(api, record, rev, status.runs, state=registry.CANCELLED, outcome="cancelled")
        return CancelResult(experiment, rev.revision, rev.job, False, 0, 0, 0, grace)
    if rev.state not in {registry.FINISHED, registry.CANCELLED}:
        # What the record keeps: runs that had not finished were cancelled (the explanation below says how).
        ended = [replace(r, state="cancelled") if r.state in _UNFINISHED else r for r in status.runs]
        finalize(api, record, rev, ended, state=registry.CANCELLED, outcome="cancelled")
    job = status.job_object
    if job is not None:
        template = ((job.get("spec") or {}).get("template") or {}).get("spec") or {}
        grace = int(template.get("terminationGracePeriodSeconds") or DEFAULT_GRACE_SECONDS)
    deleted = api.delete("jobs", rev.job, propagation="Background")
    return CancelResult(
        experiment,
        rev.revision,
        rev.job,
        deleted,
        running=counts.get("running", 0),
        waiting=counts.get("pending", 0) + counts.get("retrying", 0),
        finished=counts.get("succeeded", 0) + counts.get("failed", 0),
        grace_seconds=grace,
    )
