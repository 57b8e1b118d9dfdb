"""Team queues (Kueue): which LocalQueue a sweep goes to, and where its Workload stands, in one line.

Where Kueue runs, every team namespace has a LocalQueue (infra names it after the team); a sweep's Job carries
Kueue's queue label and is created suspended, and Kueue makes a Workload of it: queued, quota reserved in a flavor
(on-prem, or a cloud burst pool), admitted (the Job is unsuspended), maybe evicted or preempted later. Where Kueue
does not run (no LocalQueue API), nothing here sends more than the one list that finds that out.

Reading is decided from plain data (:func:`choose_queue`, :func:`workload_state`); the requests are two lists,
and for a sweep waiting in its queue one GET of Kueue's visibility API for its position (:func:`position_of`),
which says nothing where that API is not served or not allowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ml_jobs import queueing
from ml_jobs.errors import ApiError, HerdError, NotFoundError

__all__ = [
    "QueueError",
    "QueueState",
    "choose_queue",
    "find_queue",
    "position_of",
    "read_state",
    "workload_of",
    "workload_state",
]

# Kueue labels a Job's Workload with the Job's uid.
JOB_UID_LABEL = f"{queueing.GROUP}/job-uid"


class QueueError(HerdError):
    """The spec names a queue the namespace does not have, or the namespace's queue is ambiguous."""


def choose_queue(wanted: str | None, available: list[str] | None, namespace: str) -> str | None:
    """The LocalQueue a sweep goes to.

    Args:
        wanted: the spec's ``queue``, if any.
        available: the namespace's LocalQueues; ``None`` when the cluster has no Kueue.
        namespace: the namespace (a team's own queue is named after it).

    Raises:
        QueueError: ``wanted`` is not one of them, or there is no Kueue, or several queues and none is the team's.
    """
    if available is None:
        if wanted:
            raise QueueError(f"queue: {wanted!r}: this cluster runs no Kueue (it has no LocalQueues)")
        return None
    if wanted:
        if wanted not in available:
            have = ", ".join(sorted(available)) or "none"
            raise QueueError(f"queue: {wanted!r} is not a LocalQueue of namespace {namespace} (it has: {have})")
        return wanted
    if not available:
        return None
    if len(available) == 1:
        return available[0]
    if queueing.queue_name(namespace) in available:
        return queueing.queue_name(namespace)
    raise QueueError(
        f"queue: namespace {namespace} has several LocalQueues ({', '.join(sorted(available))}); "
        "name one in the spec's queue field"
    )


def find_queue(api: Any, wanted: str | None) -> str | None:
    """The LocalQueue of ``api.namespace`` a sweep goes to (one list request), or ``None`` without Kueue."""
    try:
        queues = api.list("localqueues")
    except NotFoundError:  # no such API: Kueue is not installed
        return choose_queue(wanted, None, api.namespace)
    return choose_queue(wanted, [q["metadata"]["name"] for q in queues], api.namespace)


def workload_of(api: Any, job: dict[str, Any]) -> dict[str, Any] | None:
    """The Workload Kueue made of ``job`` (``None`` before it has made one)."""
    uid = job.get("metadata", {}).get("uid")
    if not uid:
        return None
    try:
        found = api.list("workloads", label_selector=f"{JOB_UID_LABEL}={uid}")
    except NotFoundError:
        return None
    return found[0] if found else None


@dataclass(frozen=True)
class QueueState:
    """Where a sweep stands in its team queue.

    Attributes:
        queue: the LocalQueue.
        state: ``queued``, ``reserved``, ``admitted``, ``evicted``, ``preempted``, ``finished``.
        flavor: the flavor its runs were admitted to (``""`` while queued).
        line: the one line ``status`` and why-pending print.
        position: its place among the queue's waiting sweeps, 1 for the next Kueue tries (where the visibility
            API said it).
    """

    queue: str
    state: str
    flavor: str
    line: str
    position: int | None = None

    @property
    def where(self) -> str:
        """The flavor in words: on-prem, or the cloud pool's name."""
        return describe_flavor(self.flavor)


def describe_flavor(flavor: str) -> str:
    """``on-prem`` for herd's on-prem flavors, ``cloud pool <name>`` for a burst pool's."""
    if not flavor:
        return ""
    return "on-prem" if flavor in queueing.ONPREM_FLAVORS else f"cloud pool {flavor}"


def _conditions(workload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in workload.get("status", {}).get("conditions", [])}


def _flavor(workload: dict[str, Any]) -> str:
    for assignment in workload.get("status", {}).get("admission", {}).get("podSetAssignments", []):
        flavors = set((assignment.get("flavors") or {}).values())
        if flavors:
            return ",".join(sorted(flavors))
    return ""


# Seconds status waits for a position at most: a nicety, not worth holding the rest of the answer back for.
POSITION_TIMEOUT = 5.0
# The states in which a Workload waits in its queue, and has a position there.
WAITING = ("queued", "preempted")


def workload_state(queue: str, workload: dict[str, Any] | None, position: int | None = None) -> QueueState:
    """Where the Workload ``workload`` of a Job in ``queue`` stands, as data and one line; ``position`` (1 for
    the next) where the visibility API gave it."""
    if workload is None:
        return QueueState(queue, "queued", "", f"queued in {queue}: Kueue has not taken the sweep in yet")
    cond = _conditions(workload)

    def true(kind: str) -> dict[str, Any] | None:
        c = cond.get(kind)
        return c if c and c.get("status") == "True" else None

    flavor = _flavor(workload)
    if c := true("Finished"):
        return QueueState(queue, "finished", flavor, f"finished in {queue}: {c.get('message', '')}".rstrip(": "))
    if c := true("Preempted"):
        why = _preemption(c.get("reason", ""), c.get("message", ""))
        if c.get("reason") == PREEMPTED_FOR_PRIORITY and (own := _priority_class(workload)):
            why += f" (this one is {own})"
        again = "waiting to be admitted again" + (f", position {position}" if position else "")
        return QueueState(queue, "preempted", "", f"preempted in {queue}: {why}; {again}", position)
    if c := true("Evicted"):
        why = c.get("message") or c.get("reason", "")
        return QueueState(queue, "evicted", "", f"evicted from {queue} ({c.get('reason', '')}): {why}")
    if true("Admitted"):
        line = f"admitted in {queue} to {flavor} ({describe_flavor(flavor)})"
        admitted, wanted = _counts(workload)
        if admitted < wanted:  # partial admission: fewer runs at once than the sweep's parallelism
            line += f", {admitted} of {wanted} runs at once"
        requeued = true("Requeued")
        if requeued and requeued.get("reason") == "Preempted":
            before = (cond.get("Preempted") or {}).get("message") or requeued.get("message", "")
            line += f"; preempted before ({_preemption('', before)}) and admitted again"
        return QueueState(queue, "admitted", flavor, line)
    if true("QuotaReserved"):
        return QueueState(
            queue, "reserved", flavor, f"quota reserved in {queue} on {flavor} ({describe_flavor(flavor)})"
        )
    pending = cond.get("QuotaReserved") or {}
    message = pending.get("message") or "waiting for quota"
    where = f"queued in {queue}, position {position}" if position else f"queued in {queue}"
    return QueueState(queue, "queued", "", f"{where}: {_why(message)}", position)


def position_of(api: Any, queue: str, workload: dict[str, Any]) -> int | None:
    """The place of ``workload`` among the pending Workloads of LocalQueue ``queue`` (1 for the next), from
    Kueue's visibility API: one GET, tried once; ``None`` where the API is not served (no such group, Kueue
    without it), not allowed, failing or not answering, or the Workload is not pending there."""
    try:
        summary = api.get("pendingworkloads", queue, attempts=1, timeout=min(api.timeout, POSITION_TIMEOUT))
    except ApiError:
        return None
    name = workload.get("metadata", {}).get("name")
    for item in summary.get("items") or []:
        if item.get("metadata", {}).get("name") == name:
            return int(item.get("positionInLocalQueue", 0)) + 1
    return None


def read_state(api: Any, queue: str, job: dict[str, Any]) -> QueueState:
    """Where ``job`` stands in ``queue``: its Workload (one list), and while it waits its position (one GET)."""
    workload = workload_of(api, job)
    state = workload_state(queue, workload)
    if workload is None or state.state not in WAITING:
        return state
    return workload_state(queue, workload, position_of(api, queue, workload))


def _counts(workload: dict[str, Any]) -> tuple[int, int]:
    """(pods admitted at once, pods the Job asks for at once) of the Workload's pod sets."""
    wanted = sum(p.get("count", 0) for p in workload.get("spec", {}).get("podSets", []))
    assignments = workload.get("status", {}).get("admission", {}).get("podSetAssignments", [])
    admitted = sum(a.get("count", 0) for a in assignments)
    return admitted, wanted


_DUE_TO = re.compile(r"due to ([^;]+)")
# Kueue's reasons of a Workload's Preempted condition: the words its message says each with (after "due to"), and
# what it means for a herd sweep. Once the Workload is admitted again the condition's reason is "QuotaReserved" and
# only the message ("Previously: ...") still says why.
PREEMPTED_FOR_PRIORITY = "InClusterQueue"
_PREEMPTED = {
    PREEMPTED_FOR_PRIORITY: (
        "prioritization in the ClusterQueue",
        "a higher-priority sweep of the team needed its quota",
    ),
    "InCohortReclamation": ("reclamation within the cohort", "the team it borrowed from took its quota back"),
    "InCohortReclaimWhileBorrowing": (
        "reclamation within the cohort while borrowing",
        "a higher-priority sweep of another team needed the quota",
    ),
    "InCohortFairSharing": ("Fair Sharing within the cohort", "fair sharing between the teams"),
}
_BY_WORDS = {words: meaning for words, meaning in _PREEMPTED.values()}


def _preemption(reason: str, message: str) -> str:
    """Why Kueue preempted a Workload, in herd's words: from the condition's reason, else from the words of its
    message, else the message's first clause."""
    if reason in _PREEMPTED:
        return _PREEMPTED[reason][1]
    m = _DUE_TO.search(message)
    if m:
        words = m.group(1).strip()
        return _BY_WORDS.get(words, words)
    return message.split(";", maxsplit=1)[0].strip() or "preempted"


def _priority_class(workload: dict[str, Any]) -> str:
    """The PriorityClass the Workload has its priority from (Kueue copies the pods' class), if any."""
    return ((workload.get("spec") or {}).get("priorityClassRef") or {}).get("name", "")


_SHORT = re.compile(
    r"insufficient (?:unused )?quota for (?P<resource>\S+) in flavor (?P<flavor>[^\s,]+)"
    r"(?:, previously considered podsets requests \(\S+\) \+ current podset request \((?P<need>[^)]+)\)"
    r" > maximum capacity \((?P<cap>[^)]+)\)|, (?P<more>\S+) more needed)?"
)


def _why(message: str) -> str:
    """Kueue's reason in short (each flavor: what the sweep needs of what it lacks, and the most it can have),
    saying so where on-prem is full and the team's cloud cap is reached too."""
    text = message.strip()
    found = list(_SHORT.finditer(text))
    if not found:
        return text
    parts = []
    for m in found:
        flavor, resource = m["flavor"], m["resource"]
        if m["need"] is not None:
            parts.append(f"{flavor} {resource} {m['need']} > {m['cap']}")
        elif m["more"] is not None:
            parts.append(f"{flavor} {resource} {m['more']} more needed")
        else:
            parts.append(f"{flavor} {resource}")
    flavors = {m["flavor"] for m in found}
    onprem = flavors & set(queueing.ONPREM_FLAVORS)
    cloud = flavors - onprem
    if onprem and cloud:
        head = "on-prem is full and the team's cloud cap is reached"
    elif onprem:
        head = "on-prem is full"
    else:
        head = "the team's cloud cap is reached"
    return f"{head} ({', '.join(parts)})"
