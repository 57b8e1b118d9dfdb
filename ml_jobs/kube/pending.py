"""Why runs are pending, in one line per cause, read from what the cluster already says.

Sources, all in the shapes the components write them:

- the scheduler's ``PodScheduled=False`` condition (reason ``Unschedulable``) and ``FailedScheduling`` event:
  ``0/5 nodes are available: 2 node(s) didn't match Pod's node affinity/selector, 3 Insufficient
  nvidia.com/gpu. preemption: ...``;
- cluster-autoscaler's ``TriggeredScaleUp`` / ``NotTriggerScaleUp`` events on the pod;
- the Job controller's ``FailedCreate`` event on the Job (a ResourceQuota refusing the pod);
- the kubelet's container ``waiting`` state (image pulls, config errors) and ``FailedMount`` events.

Where nodes are cordoned, the nodes themselves (when the caller may list them) say which cordoned node would take
the run once uncordoned: one whose labels match the pod's node selector and required affinity, whose taints the pod
tolerates, and whose allocatable resources hold the pod's requests (what already runs there is not counted).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ml_jobs.quantity import parse_quantity

# The scheduler's FitError: "0/9 nodes are available: <count> <reason>, ... ." then other sentences (DRA's "no new
# claims to deallocate", "preemption: ..."). Reasons without a count concern the pod itself (an unbound claim).
_AVAILABLE = re.compile(r"^0/(\d+) nodes are available: (.*?)(?:\.(?:\s.*)?)?$", re.S)
_ITEM = re.compile(r"^(\d+) (.*)$")
_TAINT = re.compile(r"taint \{([^:}]+): ?([^}]*)\}")
_SCALE_UP = re.compile(r"\{(\S+) (\d+)->(\d+) \(max: (\d+)\)\}")
_QUOTA = re.compile(r"exceeded quota: ([^,]+), (requested: .*)$")
CORDONED = "are cordoned"  # the words of the cordon cause; status lists the nodes only when a cause has them
# The taint a cordon itself puts on a node: what "uncordoned" takes away.
_CORDON_TAINT = "node.kubernetes.io/unschedulable"
_NAMED = 3  # nodes named in "... would take it" before "or N more"


@dataclass(frozen=True)
class Cause:
    """One reason runs are pending, and how many runs it holds back."""

    text: str
    runs: int

    def __str__(self) -> str:
        noun = "run" if self.runs == 1 else "runs"
        return f"{self.runs} {noun}: {self.text}"


def _selector_text(pod: dict[str, Any]) -> str:
    """The node labels a pod requires, as ``key=value`` / ``key in (a,b)`` text."""
    spec = pod.get("spec") or {}
    parts = [f"{k}={v}" for k, v in sorted((spec.get("nodeSelector") or {}).items())]
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    for term in required.get("nodeSelectorTerms") or []:
        for expr in term.get("matchExpressions") or []:
            op, key, values = expr.get("operator"), expr.get("key"), expr.get("values") or []
            if op == "In" and len(values) == 1:
                parts.append(f"{key}={values[0]}")
            elif op == "In":
                parts.append(f"{key} in ({','.join(values)})")
            elif op == "NotIn":
                parts.append(f"{key} not in ({','.join(values)})")
            else:
                parts.append(f"{key} {op}")
    return ", ".join(dict.fromkeys(parts)) or "(none)"


def _matches(labels: dict[str, str], expr: dict[str, Any]) -> bool:
    """Does a node with ``labels`` meet one node-selector requirement (the scheduler's operators)."""
    key, op, values = expr.get("key", ""), expr.get("operator"), expr.get("values") or []
    if op == "In":
        return labels.get(key) in values
    if op == "NotIn":
        return labels.get(key) not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    if op in {"Gt", "Lt"} and key in labels and values:
        try:
            have, bound = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return have > bound if op == "Gt" else have < bound
    return False


def _selects(pod: dict[str, Any], node: dict[str, Any]) -> bool:
    """The pod's node selector and required node affinity (any one term, all its expressions) hold on ``node``."""
    spec = pod.get("spec") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()):
        return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms") or []
    return not terms or any(all(_matches(labels, e) for e in term.get("matchExpressions") or []) for term in terms)


def _tolerated(taint: dict[str, Any], tolerations: list[dict[str, Any]]) -> bool:
    for t in tolerations:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        if t.get("operator") == "Exists" and (not t.get("key") or t.get("key") == taint.get("key")):
            return True
        if t.get("key") == taint.get("key") and (t.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _requests(pod: dict[str, Any]) -> dict[str, Any]:
    """What the pod asks of a node: its containers' requests summed, or an init container's if larger."""
    spec = pod.get("spec") or {}
    total: dict[str, Any] = {}
    for c in spec.get("containers") or []:
        for name, amount in ((c.get("resources") or {}).get("requests") or {}).items():
            total[name] = total.get(name, 0) + parse_quantity(str(amount))
    for c in spec.get("initContainers") or []:
        for name, amount in ((c.get("resources") or {}).get("requests") or {}).items():
            total[name] = max(total.get(name, 0), parse_quantity(str(amount)))
    return total


def would_take(pod: dict[str, Any], node: dict[str, Any]) -> bool:
    """Would ``node`` take ``pod`` were it not cordoned: selector and affinity, taints, allocatable resources."""
    if not _selects(pod, node):
        return False
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        hard = taint.get("effect") in {"NoSchedule", "NoExecute"}
        if hard and taint.get("key") != _CORDON_TAINT and not _tolerated(taint, tolerations):
            return False
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    return all(
        amount <= (parse_quantity(str(allocatable[name])) if name in allocatable else 0)
        for name, amount in _requests(pod).items()
        if amount > 0
    )


def _cordoned_would_take(pod: dict[str, Any], nodes: list[dict[str, Any]] | None) -> str:
    """``; uncordoned, gpu-01 or gpu-02 would take it``: the cordoned nodes that would take ``pod``."""
    if nodes is None:
        return ""
    names = sorted(
        n["metadata"]["name"] for n in nodes if (n.get("spec") or {}).get("unschedulable") and would_take(pod, n)
    )
    if not names:
        return "; none of them would take it if uncordoned"
    shown, more = names[:_NAMED], len(names) - _NAMED
    if more > 0:
        listed = f"{', '.join(shown)} or {more} more"
    elif len(shown) > 1:
        listed = f"{', '.join(shown[:-1])} or {shown[-1]}"
    else:
        listed = shown[0]
    return f"; uncordoned, {listed} would take it"


def scheduler_causes(message: str, pod: dict[str, Any], nodes: list[dict[str, Any]] | None = None) -> list[str]:
    """Turn a scheduler ``FitError`` message into cause lines (naming the resource, label or taint).

    ``nodes``: the cluster's nodes, if the caller could list them, to name the cordoned ones that would take the
    pod.
    """
    m = _AVAILABLE.match(message.strip())
    if not m:
        return [f"not schedulable: {message.strip()}"] if message.strip() else []
    total = int(m.group(1))
    causes = []
    for item in m.group(2).split(", "):
        im = _ITEM.match(item.strip())
        if not im:
            if "unbound immediate PersistentVolumeClaims" in item:
                causes.append(
                    "its volume claim is not bound (no volume provisioned: is the NFS provisioner running?)"
                )
            continue
        n, what = int(im.group(1)), im.group(2)
        of = f"{n}/{total} nodes"
        every = n == total
        if what.startswith("Insufficient "):
            res = what.removeprefix("Insufficient ")
            causes.append(f"not enough {res} free on any node" if every else f"{of} lack free {res}")
        elif "didn't match Pod's node affinity/selector" in what:
            sel = _selector_text(pod)
            causes.append(f"no node matches the node selector {sel}" if every else f"{of} don't match {sel}")
        elif "untolerated taint" in what or "had taint {" in what:
            # Schedulers before 1.30 name the taint; newer ones say "had untolerated taint(s)" only.
            if t := _TAINT.search(what):
                taint = f"{t.group(1)}={t.group(2)}" if t.group(2) else t.group(1)
                causes.append(f"{of} have taint {taint}, which the run does not tolerate")
            else:
                causes.append(f"{of} have taints the run does not tolerate")
        elif "were unschedulable" in what:
            causes.append(f"{of} {CORDONED}{_cordoned_would_take(pod, nodes)}")
        elif "persistentvolumeclaim" in what.lower() or "PersistentVolume" in what:
            causes.append(f"volume: {what} ({of})")
        elif what == "Too many pods":
            causes.append(f"{of} are at their pod limit")
        else:
            causes.append(f"{of}: {what}")
    return causes


def _event_causes(event: dict[str, Any]) -> list[str]:
    reason, message = event.get("reason", ""), (event.get("message") or "").strip()
    if reason == "TriggeredScaleUp":
        groups = [f"{g} {a}->{b} (max {mx})" for g, a, b, mx in _SCALE_UP.findall(message)]
        return [f"a cloud pool is scaling up: {', '.join(groups) or message}"]
    if reason == "NotTriggerScaleUp":
        detail = message.split(":", 1)[1].strip() if ":" in message else message
        return [f"cluster-autoscaler will not add a node: {detail}"]
    if reason == "FailedMount":
        return [f"volume cannot be mounted: {message}"]
    return []


def explain(
    pending: list[tuple[int, dict[str, Any] | None]],
    *,
    job: dict[str, Any] | None,
    events: list[dict[str, Any]],
    nodes: list[dict[str, Any]] | None = None,
) -> list[Cause]:
    """Why the given runs are pending: causes, each with the number of runs it holds back, most common first.

    Args:
        pending: ``(index, pod or None)`` for every pending run (``None``: the Job controller made no pod yet).
        job: the Job, for its parallelism, active count and its ``FailedCreate`` events.
        events: events of the namespace (the caller lists them once); matched by ``involvedObject.uid``.
        nodes: the cluster's nodes, where the caller may list them (see :data:`CORDONED`): which cordoned node
            would take a run.
    """
    by_uid: dict[str, list[dict[str, Any]]] = {}
    for ev in sorted(events, key=_event_time):
        uid = (ev.get("involvedObject") or {}).get("uid")
        if uid:
            by_uid.setdefault(uid, []).append(ev)
    counts: Counter[str] = Counter()
    job_meta = (job or {}).get("metadata") or {}
    job_events = by_uid.get(job_meta.get("uid", ""), [])
    quota = next(
        (
            e
            for e in reversed(job_events)
            if e.get("reason") == "FailedCreate" and "exceeded quota" in e.get("message", "")
        ),
        None,
    )

    for _index, pod in pending:
        lines: list[str] = []
        if pod is None:
            lines.extend(_no_pod_causes(job, quota))
        else:
            lines.extend(_pod_causes(pod, by_uid.get((pod.get("metadata") or {}).get("uid", ""), []), nodes))
        for line in dict.fromkeys(lines) or ["waiting (no reason reported yet)"]:
            counts[line] += 1
    return [Cause(text, n) for text, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def _no_pod_causes(job: dict[str, Any] | None, quota: dict[str, Any] | None) -> list[str]:
    if quota is not None:
        m = _QUOTA.search(quota.get("message", ""))
        return [f"namespace quota {m.group(1)} exceeded ({m.group(2)})" if m else quota.get("message", "")]
    spec = (job or {}).get("spec") or {}
    status = (job or {}).get("status") or {}
    if spec.get("suspend"):
        return ["the Job is suspended"]
    parallelism = spec.get("parallelism")
    if parallelism is not None and (status.get("active") or 0) >= parallelism:
        return [f"waiting for a free slot (parallelism {parallelism})"]
    return ["waiting for the Job controller to create its pod"]


def _pod_causes(
    pod: dict[str, Any], events: list[dict[str, Any]], nodes: list[dict[str, Any]] | None = None
) -> list[str]:
    status = pod.get("status") or {}
    lines: list[str] = []
    if status.get("phase") == "Failed":
        disrupted = next(
            (
                c
                for c in status.get("conditions") or []
                if c.get("type") == "DisruptionTarget" and c.get("status") == "True"
            ),
            None,
        )
        if disrupted is not None:
            why = f"{disrupted.get('reason', '')}: {disrupted.get('message', '')}".strip(": ")
            return [f"its node went away ({why}); the run is retried without counting it as a failure"]
        term = (((status.get("containerStatuses") or [{}])[0]).get("state") or {}).get("terminated") or {}
        code = term.get("exitCode")
        why = f"exit code {code}" if code is not None else (status.get("reason") or "failed")
        return [f"an attempt failed ({why}); the Job controller starts the next one"]
    scheduled = next((c for c in status.get("conditions") or [] if c.get("type") == "PodScheduled"), None)
    if scheduled and scheduled.get("status") == "False" and scheduled.get("reason") == "Unschedulable":
        lines.extend(scheduler_causes(scheduled.get("message", ""), pod, nodes))
    elif not scheduled or scheduled.get("status") != "True":
        failed = [e for e in events if e.get("reason") == "FailedScheduling"]
        if failed:
            lines.extend(scheduler_causes(failed[-1].get("message", ""), pod, nodes))
    # The autoscaler's latest word on this pod only (it alternates as pools fill up).
    scaler = [e for e in events if e.get("reason") in {"TriggeredScaleUp", "NotTriggerScaleUp"}]
    if scaler:
        lines.extend(_event_causes(scaler[-1]))
    for cs in status.get("containerStatuses") or status.get("initContainerStatuses") or []:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in {"ErrImagePull", "ImagePullBackOff", "InvalidImageName"}:
            lines.append(
                f"image {cs.get('image')} cannot be pulled ({reason}): {waiting.get('message', '')}".strip()
            )
        elif reason and reason not in {"ContainerCreating", "PodInitializing"}:
            lines.append(f"container {cs.get('name')} waiting: {reason} {waiting.get('message', '')}".strip())
    for ev in events:
        if ev.get("reason") == "FailedMount":
            lines.extend(_event_causes(ev))
            break
    if not lines and scheduled and scheduled.get("status") == "True":
        node = (pod.get("spec") or {}).get("nodeName")
        lines.append(f"starting on {node}" if node else "starting")
    elif not lines and scheduled is None:
        lines.append("waiting for the scheduler")
    return lines


def _event_time(ev: dict[str, Any]) -> str:
    return str(ev.get("lastTimestamp") or ev.get("eventTime") or ev.get("firstTimestamp") or "")
