"""Test doubles of the cluster components the emulator does not run: Job controller, scheduler, kubelet,
cluster-autoscaler. They write pods, Job status and events into the emulator directly (not counted as
requests), in the shapes the real components produce:

- Job controller (``pkg/controller/job``): pods named ``<job>-<index>-<5 random>`` with ``generateName``, the
  ``batch.kubernetes.io/{controller-uid,job-name,job-completion-index}`` labels (and the legacy ``controller-uid``
  / ``job-name``), the ``job-completion-index`` and (with ``backoffLimitPerIndex``) ``job-index-failure-count``
  annotations, a controller ``ownerReference``, the ``batch.kubernetes.io/job-tracking`` finalizer and the
  ``JOB_COMPLETION_INDEX`` env var; Job status ``active`` / ``ready`` / ``succeeded`` / ``failed`` /
  ``completedIndexes`` / ``failedIndexes`` / ``uncountedTerminatedPods`` and the conditions
  ``SuccessCriteriaMet`` + ``Complete`` (reason ``CompletionsReached``, "Reached expected number of succeeded
  pods") or ``FailureTarget`` + ``Failed`` (reason ``FailedIndexes``, "Job has failed indexes");
  ``SuccessfulCreate`` and quota ``FailedCreate`` events on the Job.
- Scheduler: runs the default filter order (NodeUnschedulable, TaintToleration, NodeAffinity,
  NodeResourcesFit), stops at a node's first failing filter like the framework does, and writes the ``FitError``
  message the scheduler writes — reasons counted over nodes, sorted as strings, plus the preemption part:
  ``0/5 nodes are available: 2 node(s) didn't match Pod's node affinity/selector, 3 Insufficient nvidia.com/gpu.
  preemption: 0/5 nodes are available: 2 Preemption is not helpful for scheduling, 3 No preemption victims found
  for incoming pod.`` — into the pod's ``PodScheduled=False`` condition (reason ``Unschedulable``) and a
  ``FailedScheduling`` event (events.k8s.io style: ``reportingComponent``, ``action``, ``eventTime``).
- Kubelet: phases, conditions, ``containerStatuses`` with ``running`` / ``terminated`` states (``Completed`` /
  ``Error`` / ``OOMKilled``), the termination message, and the container's log. For the results reader pod it
  runs the pod's real shell command, with the claim's mount path pointed at a local directory (the NFS volume's
  stand-in); for a run's pod, the real entry shim and command, its termination-message file becoming
  ``state.terminated.message``.
- cluster-autoscaler: ``TriggeredScaleUp`` / ``NotTriggerScaleUp`` events as it writes them.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import os
import random
import re
import string
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ml_jobs import _labels as L
from tests.ml_jobs.cluster.emulator import EmulatedCluster, now_iso

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
RESOURCE_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 10**3, "M": 10**6, "G": 10**9}


def quantity(value: str | int | float) -> float:
    """A Kubernetes resource quantity as a number (cpu in cores, memory in bytes)."""
    text = str(value)
    if text.endswith("m"):
        return float(text[:-1]) / 1000
    for suffix, factor in RESOURCE_UNITS.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def _event_time() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ref(obj: dict[str, Any], kind: str, api_version: str) -> dict[str, Any]:
    meta = obj["metadata"]
    return {
        "kind": kind,
        "namespace": meta["namespace"],
        "name": meta["name"],
        "uid": meta["uid"],
        "apiVersion": api_version,
        "resourceVersion": meta.get("resourceVersion", ""),
    }


def _suffix() -> str:
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=5))


def legacy_event(
    cluster: EmulatedCluster,
    obj: dict[str, Any],
    kind: str,
    api_version: str,
    *,
    etype: str,
    reason: str,
    message: str,
    component: str,
) -> dict[str, Any]:
    """A core/v1 Event as client-go's legacy recorder writes it (Job controller, cluster-autoscaler, kubelet)."""
    now = now_iso()
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{obj['metadata']['name']}.{random.getrandbits(64):x}"},
        "involvedObject": _ref(obj, kind, api_version),
        "reason": reason,
        "message": message,
        "source": {"component": component},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "type": etype,
        "eventTime": None,
        "reportingComponent": component,
        "reportingInstance": "",
    }
    return cluster.put("events", event)


def scheduler_event(
    cluster: EmulatedCluster, pod: dict[str, Any], *, etype: str, reason: str, message: str
) -> None:
    """An event the scheduler writes through events.k8s.io/v1, as read back through core/v1."""
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{pod['metadata']['name']}.{random.getrandbits(64):x}"},
        "involvedObject": _ref(pod, "Pod", "v1"),
        "reason": reason,
        "message": message,
        "source": {},
        "firstTimestamp": None,
        "lastTimestamp": None,
        "type": etype,
        "eventTime": _event_time(),
        "action": "Scheduling" if reason == "FailedScheduling" else "Binding",
        "reportingComponent": "default-scheduler",
        "reportingInstance": "default-scheduler-cp-1",
    }
    cluster.put("events", event)


# --------------------------------------------------------------------------------------------- Job controller
@dataclass
class JobControllerDouble:
    """Creates an Indexed Job's pods and keeps its status, as the Job controller does (driven by the test)."""

    cluster: EmulatedCluster
    failures: dict[tuple[str, int], int] = field(default_factory=dict)

    def job(self, name: str) -> dict[str, Any]:
        job = self.cluster.get("jobs", name)
        assert job is not None, f"no Job {name}"
        return job

    def pods(self, job_name: str) -> list[dict[str, Any]]:
        uid = self.job(job_name)["metadata"]["uid"]
        return [
            p for p in self.cluster.all("pods") if (p["metadata"].get("labels") or {}).get(CONTROLLER_UID) == uid
        ]

    def make_pod(self, job: dict[str, Any], index: int) -> dict[str, Any]:
        meta, spec = job["metadata"], job["spec"]
        template = copy.deepcopy(spec["template"])
        tmeta = template.get("metadata") or {}
        name = meta["name"]
        labels = {
            **(tmeta.get("labels") or {}),
            CONTROLLER_UID: meta["uid"],
            "batch.kubernetes.io/job-name": name,
            "controller-uid": meta["uid"],
            "job-name": name,
            L.COMPLETION_INDEX: str(index),
        }
        annotations = {**(tmeta.get("annotations") or {}), L.COMPLETION_INDEX: str(index)}
        if spec.get("backoffLimitPerIndex") is not None:
            annotations[L.INDEX_FAILURE_COUNT] = str(self.failures.get((name, index), 0))
        pod_spec = template["spec"]
        for c in pod_spec.get("containers", []):
            c.setdefault("env", []).append(
                {
                    "name": "JOB_COMPLETION_INDEX",
                    "valueFrom": {
                        "fieldRef": {
                            "apiVersion": "v1",
                            "fieldPath": f"metadata.annotations['{L.COMPLETION_INDEX}']",
                        }
                    },
                }
            )
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("imagePullPolicy", "IfNotPresent")
        pod_spec.setdefault("schedulerName", "default-scheduler")
        pod_spec.setdefault("terminationGracePeriodSeconds", 30)
        pod_spec.setdefault("dnsPolicy", "ClusterFirst")
        pod_spec.setdefault("securityContext", {})
        pod_spec.setdefault("enableServiceLinks", True)
        pod_spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        pod_spec.setdefault("priority", 0)
        pod_spec.setdefault("tolerations", []).extend(
            [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
            ]
        )
        if pod_spec.get("subdomain"):
            pod_spec["hostname"] = f"{name}-{index}"
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": f"{name}-{index}-{_suffix()}",
                "generateName": f"{name}-{index}-",
                "namespace": meta["namespace"],
                "labels": labels,
                "annotations": annotations,
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": name,
                        "uid": meta["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
                "finalizers": ["batch.kubernetes.io/job-tracking"],
            },
            "spec": pod_spec,
            "status": {"phase": "Pending", "qosClass": "Burstable"},
        }

    def sync(self, job_name: str) -> list[dict[str, Any]]:
        """Create pods for indexes that need one, up to ``parallelism``; returns the new pods."""
        job = self.job(job_name)
        spec, status = job["spec"], job.get("status") or {}
        if spec.get("suspend") or self._finished(job):
            return []
        completions = spec["completions"]
        parallelism = spec.get("parallelism", 1)
        pods = self.pods(job_name)
        done = _indexes(status.get("completedIndexes")) | _indexes(status.get("failedIndexes"))
        active = [p for p in pods if p["status"]["phase"] in {"Pending", "Running"}]
        busy = {int(p["metadata"]["annotations"][L.COMPLETION_INDEX]) for p in active}
        new = []
        for i in range(completions):
            if len(active) + len(new) >= parallelism:
                break
            if i in done or i in busy:
                continue
            pod = self.make_pod(job, i)
            self.cluster.put("pods", pod)
            legacy_event(
                self.cluster,
                job,
                "Job",
                "batch/v1",
                etype="Normal",
                reason="SuccessfulCreate",
                message=f"Created pod: {pod['metadata']['name']}",
                component="job-controller",
            )
            new.append(pod)
        self._status(job_name)
        return new

    def quota_exceeded(
        self, job_name: str, index: int, *, quota: str, resource: str, requested: str, used: str, limited: str
    ) -> None:
        """The ResourceQuota admission refused the pod: the Job controller's ``FailedCreate`` event."""
        job = self.job(job_name)
        message = (
            f'Error creating: pods "{job_name}-{index}-{_suffix()}" is forbidden: exceeded quota: {quota}, '
            f"requested: {resource}={requested}, used: {resource}={used}, limited: {resource}={limited}"
        )
        legacy_event(
            self.cluster,
            job,
            "Job",
            "batch/v1",
            etype="Warning",
            reason="FailedCreate",
            message=message,
            component="job-controller",
        )

    def pod_finished(self, pod: dict[str, Any]) -> None:
        """Account a terminated pod: completed / failed index, replacement pod, Job conditions."""
        meta = pod["metadata"]
        job_name = meta["labels"]["batch.kubernetes.io/job-name"]
        index = int(meta["annotations"][L.COMPLETION_INDEX])
        job = self.job(job_name)
        spec = job["spec"]
        # The controller removes its tracking finalizer once the pod is counted.
        self.cluster.patch("pods", meta["name"], {"metadata": {"finalizers": None}})
        if pod["status"]["phase"] == "Failed":
            self.failures[(job_name, index)] = self.failures.get((job_name, index), 0) + 1
            limit = spec.get("backoffLimitPerIndex")
            if limit is not None and self.failures[(job_name, index)] > limit:
                status = job.get("status") or {}
                failed = _indexes(status.get("failedIndexes")) | {index}
                self.cluster.patch("jobs", job_name, {"status": {"failedIndexes": _format(failed)}})
        else:
            status = job.get("status") or {}
            completed = _indexes(status.get("completedIndexes")) | {index}
            self.cluster.patch("jobs", job_name, {"status": {"completedIndexes": _format(completed)}})
        self._status(job_name)
        self.sync(job_name)

    def _finished(self, job: dict[str, Any]) -> bool:
        return any(
            c["type"] in {"Complete", "Failed"} and c["status"] == "True"
            for c in (job.get("status") or {}).get("conditions") or []
        )

    def _status(self, job_name: str) -> None:
        job = self.job(job_name)
        pods = self.pods(job_name)
        status = job.get("status") or {}
        completed = _indexes(status.get("completedIndexes"))
        failed_idx = _indexes(status.get("failedIndexes"))
        phases = [p["status"]["phase"] for p in pods]
        patch: dict[str, Any] = {
            "status": {
                "active": sum(ph in {"Pending", "Running"} for ph in phases),
                "ready": sum(ph == "Running" for ph in phases),
                "terminating": 0,
                "succeeded": phases.count("Succeeded"),
                "failed": phases.count("Failed"),
                "uncountedTerminatedPods": {},
                "startTime": status.get("startTime") or now_iso(),
            }
        }
        completions = job["spec"]["completions"]
        if not self._finished(job) and len(completed) + len(failed_idx) >= completions:
            now = now_iso()
            if failed_idx:
                reason, message, types = "FailedIndexes", "Job has failed indexes", ["FailureTarget", "Failed"]
            else:
                reason, message = "CompletionsReached", "Reached expected number of succeeded pods"
                types = ["SuccessCriteriaMet", "Complete"]
                patch["status"]["completionTime"] = now
            patch["status"]["conditions"] = [
                {
                    "type": t,
                    "status": "True",
                    "reason": reason,
                    "message": message,
                    "lastProbeTime": now,
                    "lastTransitionTime": now,
                }
                for t in types
            ]
        self.cluster.patch("jobs", job_name, patch)


def _indexes(text: str | None) -> set[int]:
    out: set[int] = set()
    for part in (text or "").split(","):
        if part:
            lo, _, hi = part.partition("-")
            out.update(range(int(lo), int(hi or lo) + 1))
    return out


def _format(indexes: set[int]) -> str:
    """The Job controller's interval notation: {0,1,2,5} -> "0-2,5"."""
    out, items = [], sorted(indexes)
    i = 0
    while i < len(items):
        j = i
        while j + 1 < len(items) and items[j + 1] == items[j] + 1:
            j += 1
        out.append(str(items[i]) if i == j else f"{items[i]}-{items[j]}")
        i = j + 1
    return ",".join(out)


# -------------------------------------------------------------------------------------------------- scheduler
def node(
    name: str,
    *,
    labels: dict[str, str] | None = None,
    cpu: str = "16",
    memory: str = "64Gi",
    gpus: int = 0,
    taints: list[dict[str, str]] | None = None,
    unschedulable: bool = False,
) -> dict[str, Any]:
    """A Node object as the kubelet registers it (allocatable incl. the device plugin's nvidia.com/gpu)."""
    allocatable = {"cpu": cpu, "memory": memory, "pods": "110"}
    if gpus:
        allocatable["nvidia.com/gpu"] = str(gpus)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {"taints": taints or [], **({"unschedulable": True} if unschedulable else {})},
        "status": {"allocatable": allocatable, "capacity": dict(allocatable)},
    }


def _affinity_ok(spec: dict[str, Any], labels: dict[str, str]) -> bool:
    """Required node affinity: any term matches when all its expressions do (In, NotIn, Exists, DoesNotExist)."""
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    if not required:
        return True

    def expr_ok(e: dict[str, Any]) -> bool:
        value = labels.get(e["key"])
        op = e["operator"]
        if op == "In":
            return value in e.get("values", [])
        if op == "NotIn":
            return value not in e.get("values", [])
        if op == "Exists":
            return value is not None
        if op == "DoesNotExist":
            return value is None
        raise ValueError(f"operator {op} not modelled by this double")

    return any(all(expr_ok(e) for e in term.get("matchExpressions", [])) for term in required["nodeSelectorTerms"])


@dataclass
class SchedulerDouble:
    """Places pending pods on nodes by the default filters, or marks them Unschedulable with the real message."""

    cluster: EmulatedCluster
    nodes: list[dict[str, Any]]

    def _requests(self, pod: dict[str, Any]) -> dict[str, float]:
        total: dict[str, float] = {}
        for c in pod["spec"].get("containers", []):
            res = c.get("resources") or {}
            for k, v in {**(res.get("limits") or {}), **(res.get("requests") or {})}.items():
                total[k] = total.get(k, 0.0) + quantity(v)
        return total

    def _used(self, node_name: str) -> dict[str, float]:
        used: dict[str, float] = {}
        for p in self.cluster.all("pods"):
            if p["spec"].get("nodeName") == node_name and p["status"].get("phase") in {"Pending", "Running"}:
                for k, v in self._requests(p).items():
                    used[k] = used.get(k, 0.0) + v
        return used

    def _filter(self, pod: dict[str, Any], n: dict[str, Any]) -> tuple[list[str], bool]:
        """(reasons, resolvable by preemption) for one node; empty reasons: the pod fits."""
        spec = pod["spec"]
        if n["spec"].get("unschedulable"):
            return ["node(s) were unschedulable"], False
        tolerations = spec.get("tolerations") or []
        for t in n["spec"].get("taints") or []:
            if t["effect"] not in {"NoSchedule", "NoExecute"}:
                continue
            if not any(
                tol.get("key") == t["key"]
                and (tol.get("operator") == "Exists" or tol.get("value") == t.get("value"))
                and tol.get("effect") in {None, "", t["effect"]}
                for tol in tolerations
            ):
                return [f"node(s) had untolerated taint {{{t['key']}: {t.get('value', '')}}}"], False
        labels = n["metadata"].get("labels") or {}
        if any(labels.get(k) != v for k, v in (spec.get("nodeSelector") or {}).items()) or not _affinity_ok(
            spec, labels
        ):
            return ["node(s) didn't match Pod's node affinity/selector"], False
        alloc = {k: quantity(v) for k, v in n["status"]["allocatable"].items()}
        used = self._used(n["metadata"]["name"])
        short = [
            f"Insufficient {k}"
            for k, v in sorted(self._requests(pod).items())
            if used.get(k, 0.0) + v > alloc.get(k, 0.0)
        ]
        return short, True

    def schedule(self, pod_name: str) -> str | None:
        """Bind the pod to the first node that fits (returns its name), or mark it Unschedulable."""
        pod = self.cluster.get("pods", pod_name)
        assert pod is not None
        counts: dict[str, int] = {}
        preemption: dict[str, int] = {}
        for n in self.nodes:
            reasons, resolvable = self._filter(pod, n)
            if not reasons:
                name = n["metadata"]["name"]
                now = now_iso()
                self.cluster.patch(
                    "pods",
                    pod_name,
                    {
                        "spec": {"nodeName": name},
                        "status": {
                            "conditions": [
                                {
                                    "type": "PodScheduled",
                                    "status": "True",
                                    "lastProbeTime": None,
                                    "lastTransitionTime": now,
                                }
                            ]
                        },
                    },
                )
                scheduler_event(
                    self.cluster,
                    pod,
                    etype="Normal",
                    reason="Scheduled",
                    message=f"Successfully assigned {pod['metadata']['namespace']}/{pod_name} to {name}",
                )
                return name
            for r in reasons:
                counts[r] = counts.get(r, 0) + 1
            key = (
                "No preemption victims found for incoming pod"
                if resolvable
                else "Preemption is not helpful for scheduling"
            )
            preemption[key] = preemption.get(key, 0) + 1
        total = len(self.nodes)
        message = (
            f"0/{total} nodes are available: {', '.join(sorted(f'{v} {k}' for k, v in counts.items()))}. "
            f"preemption: 0/{total} nodes are available: "
            f"{', '.join(sorted(f'{v} {k}' for k, v in preemption.items()))}."
        )
        self.cluster.patch(
            "pods",
            pod_name,
            {
                "status": {
                    "conditions": [
                        {
                            "type": "PodScheduled",
                            "status": "False",
                            "reason": "Unschedulable",
                            "message": message,
                            "lastProbeTime": None,
                            "lastTransitionTime": now_iso(),
                        }
                    ]
                }
            },
        )
        scheduler_event(self.cluster, pod, etype="Warning", reason="FailedScheduling", message=message)
        return None


# ---------------------------------------------------------------------------------------------------- kubelet
@dataclass
class KubeletDouble:
    """Runs (pretends to run) pods bound to nodes: phases, container states, logs, termination messages."""

    cluster: EmulatedCluster
    controller: JobControllerDouble | None = None

    def start(self, pod_name: str, log: str = "") -> None:
        pod = self.cluster.get("pods", pod_name)
        assert pod is not None and pod["spec"].get("nodeName"), f"{pod_name} is not bound to a node"
        now = now_iso()
        c = pod["spec"]["containers"][0]
        self.cluster.patch(
            "pods",
            pod_name,
            {
                "status": {
                    "phase": "Running",
                    "hostIP": "10.0.0.11",
                    "podIP": f"10.244.1.{random.randint(2, 250)}",
                    "startTime": now,
                    "conditions": [
                        {"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
                        for t in (
                            "PodReadyToStartContainers",
                            "Initialized",
                            "Ready",
                            "ContainersReady",
                            "PodScheduled",
                        )
                    ],
                    "containerStatuses": [
                        {
                            "name": c["name"],
                            "image": c["image"],
                            "imageID": f"{c['image'].split(':')[0]}@sha256:{'ab' * 32}",
                            "containerID": f"containerd://{random.getrandbits(128):032x}",
                            "ready": True,
                            "started": True,
                            "restartCount": 0,
                            "state": {"running": {"startedAt": now}},
                        }
                    ],
                }
            },
        )
        self.cluster.logs[(self.cluster.namespace, pod_name)] = log

    def finish(
        self, pod_name: str, exit_code: int = 0, *, log: str = "", message: str = "", reason: str | None = None
    ) -> None:
        pod = self.cluster.get("pods", pod_name)
        assert pod is not None
        cs = copy.deepcopy(pod["status"]["containerStatuses"][0])
        started = cs["state"]["running"]["startedAt"]
        now = now_iso()
        reason = reason or ("Completed" if exit_code == 0 else "Error")
        terminated = {
            "exitCode": exit_code,
            "reason": reason,
            "startedAt": started,
            "finishedAt": now,
            "containerID": cs["containerID"],
        }
        if message:
            terminated["message"] = message
        cs.update(ready=False, started=False, state={"terminated": terminated})
        phase = "Succeeded" if exit_code == 0 else "Failed"
        ready_reason = "PodCompleted" if exit_code == 0 else "PodFailed"
        self.cluster.patch(
            "pods",
            pod_name,
            {
                "status": {
                    "phase": phase,
                    "conditions": [
                        {
                            "type": "PodReadyToStartContainers",
                            "status": "False",
                            "lastProbeTime": None,
                            "lastTransitionTime": now,
                        },
                        {
                            "type": "Initialized",
                            "status": "True",
                            "lastProbeTime": None,
                            "lastTransitionTime": started,
                            "reason": "PodCompleted",
                        },
                        {
                            "type": "Ready",
                            "status": "False",
                            "lastProbeTime": None,
                            "lastTransitionTime": now,
                            "reason": ready_reason,
                        },
                        {
                            "type": "ContainersReady",
                            "status": "False",
                            "lastProbeTime": None,
                            "lastTransitionTime": now,
                            "reason": ready_reason,
                        },
                        {
                            "type": "PodScheduled",
                            "status": "True",
                            "lastProbeTime": None,
                            "lastTransitionTime": started,
                        },
                    ],
                    "containerStatuses": [cs],
                }
            },
        )
        key = (self.cluster.namespace, pod_name)
        self.cluster.logs[key] = self.cluster.logs.get(key, "") + log
        if self.controller is not None and pod["metadata"].get("labels", {}).get("batch.kubernetes.io/job-name"):
            self.controller.pod_finished(self.cluster.get("pods", pod_name))  # type: ignore[arg-type]

    def image_pull_failing(self, pod_name: str) -> None:
        pod = self.cluster.get("pods", pod_name)
        assert pod is not None
        c = pod["spec"]["containers"][0]
        self.cluster.patch(
            "pods",
            pod_name,
            {
                "status": {
                    "containerStatuses": [
                        {
                            "name": c["name"],
                            "image": c["image"],
                            "imageID": "",
                            "ready": False,
                            "started": False,
                            "restartCount": 0,
                            "state": {
                                "waiting": {
                                    "reason": "ImagePullBackOff",
                                    "message": f'Back-off pulling image "{c["image"]}"',
                                }
                            },
                        }
                    ]
                }
            },
        )

    def run_container(self, pod_name: str, volumes: dict[str, Path], scratch: Path) -> int:
        """Run a bound pod's real container command (for a run: the entry shim and the run's command) as a local
        process, as the kubelet would, and finish the pod with its exit status, output and termination message.

        The kubelet's part, done here without a container: ConfigMap volumes are written out under ``scratch``;
        PVC mounts point at local directories (claim -> dir); ``env`` is resolved (values, and ``fieldRef`` to
        the pod's metadata); the container's ``terminationMessagePath`` is an empty file under ``scratch``, whose
        content (at most 4096 bytes, as the kubelet keeps) becomes ``state.terminated.message``. Paths under a
        mount in the command and env are rewritten to the local directory; the one path no variable carries — the
        results mount recorded in ``sweep.json`` — is given to the shim as ``ML_JOBS_RESULTS_ROOT``.
        """
        pod = self.cluster.get("pods", pod_name)
        assert pod is not None
        spec, meta = pod["spec"], pod["metadata"]
        c = spec["containers"][0]
        sources: dict[str, Path] = {}
        for v in spec.get("volumes", []):
            if "persistentVolumeClaim" in v:
                sources[v["name"]] = volumes[v["persistentVolumeClaim"]["claimName"]]
            elif "configMap" in v:
                cm = self.cluster.get("configmaps", v["configMap"]["name"])
                assert cm is not None, f"ConfigMap {v['configMap']['name']} of pod {pod_name} does not exist"
                d = scratch / "volumes" / v["name"]
                d.mkdir(parents=True, exist_ok=True)
                for key, text in (cm.get("data") or {}).items():
                    (d / key).write_text(text, encoding="utf-8")
                sources[v["name"]] = d
        mounts = {m["mountPath"]: sources[m["name"]] for m in c.get("volumeMounts", [])}
        message_file = scratch / "termination-log"
        message_file.write_text("")
        mounts[c.get("terminationMessagePath", "/dev/termination-log")] = message_file

        def local(text: str) -> str:
            for mount, path in mounts.items():
                if text == mount or text.startswith(mount.rstrip("/") + "/"):
                    return str(path) + text[len(mount) :]
            return text

        def field(path: str) -> str:
            if m := re.fullmatch(r"metadata\.(annotations|labels)\['(.+)'\]", path):
                return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
            return str({"metadata.name": meta["name"], "metadata.namespace": meta["namespace"]}[path])

        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        for e in c.get("env", []):
            ref = (e.get("valueFrom") or {}).get("fieldRef")
            env[e["name"]] = field(ref["fieldPath"]) if ref else local(e.get("value", ""))
        claims = {v["name"] for v in spec.get("volumes", []) if "persistentVolumeClaim" in v}
        results = next((m["mountPath"] for m in c.get("volumeMounts", []) if m["name"] in claims), None)
        if results is not None:
            env["ML_JOBS_RESULTS_ROOT"] = str(mounts[results])
        command = [local(arg) for arg in [*c.get("command", []), *c.get("args", [])]]
        self.start(pod_name)
        proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
        message = message_file.read_bytes()[:4096].decode("utf-8", "replace")
        self.finish(pod_name, proc.returncode, log=proc.stdout + proc.stderr, message=message)
        return proc.returncode

    def run_reader(self, pod_name: str, volumes: dict[str, Path]) -> int:
        """Run a pod's real command with ``sh``, its PVC mounts pointed at local directories (claim -> dir)."""
        pod = self.cluster.get("pods", pod_name)
        assert pod is not None
        spec = pod["spec"]
        c = spec["containers"][0]
        claims = {
            v["name"]: v["persistentVolumeClaim"]["claimName"]
            for v in spec.get("volumes", [])
            if "persistentVolumeClaim" in v
        }
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        mounts = {m["mountPath"]: volumes[claims[m["name"]]] for m in c.get("volumeMounts", [])}
        for e in c.get("env", []):
            value = e.get("value", "")
            for mount, local in mounts.items():
                if value.startswith(mount):
                    value = str(local) + value[len(mount) :]
            env[e["name"]] = value
        node_name = spec.get("nodeName") or "node-1"
        self.cluster.patch("pods", pod_name, {"spec": {"nodeName": node_name}, "status": {"phase": "Pending"}})
        self.start(pod_name)
        proc = subprocess.run(c["command"], env=env, capture_output=True, text=True, timeout=30, check=False)
        self.finish(pod_name, proc.returncode, log=proc.stdout + proc.stderr)
        return proc.returncode


# --------------------------------------------------------------------------------------------- autoscaler
@dataclass
class AutoscalerDouble:
    """cluster-autoscaler's events on pending pods."""

    cluster: EmulatedCluster

    def triggered(self, pod_name: str, group: str, before: int, after: int, max_size: int) -> None:
        pod = self.cluster.get("pods", pod_name)
        assert pod is not None
        legacy_event(
            self.cluster,
            pod,
            "Pod",
            "v1",
            etype="Normal",
            reason="TriggeredScaleUp",
            message=f"pod triggered scale-up: [{{{group} {before}->{after} (max: {max_size})}}]",
            component="cluster-autoscaler",
        )

    def not_triggered(self, pod_name: str, reasons: str) -> None:
        pod = self.cluster.get("pods", pod_name)
        assert pod is not None
        legacy_event(
            self.cluster,
            pod,
            "Pod",
            "v1",
            etype="Normal",
            reason="NotTriggerScaleUp",
            message=f"pod didn't trigger scale-up: {reasons}",
            component="cluster-autoscaler",
        )


@dataclass
class ResultsVolumeDouble:
    """The NFS results volume: a local directory the runs (and the reader pod double) write and read."""

    root: Path

    def write_metrics(self, experiment_dir: str, index: int, metrics: dict[str, Any]) -> Path:
        from ml_jobs import layout

        d = self.root / experiment_dir / layout.run_name(index)
        d.mkdir(parents=True, exist_ok=True)
        path = d / layout.METRICS_FILE_NAME
        path.write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        return path
