"""The admission policies that keep a team's work in its queue (the why: docs/engineers/queue-enforcement.md).

Submitters may create Jobs and pods in their team namespace (ml-jobs needs both). Kueue only holds back what is
its own, so without these policies a team could skip its queue: a Job without the queue label, a bare pod, a Job
labelled for a queue not its namespace's — each up to the namespace's ResourceQuota, which is sized for all Kueue
may admit to the team (borrowing included), and with ``herd-high`` preempting others. Two
ValidatingAdmissionPolicies (CEL in the API server; no webhook), on CREATE in the team namespaces:

- ``herd-team-queue-jobs``: a Job must carry ``kueue.x-k8s.io/queue-name`` naming its namespace's LocalQueue (the
  team's, :func:`ml_jobs.queueing.queue_name`); Kueue then admits it within the team's quota, priority included;
- ``herd-team-queue-pods``: a pod must be a Job's (created by the Job controller, matched out by its user name,
  which no submitter can take on) or have the exact shape of ml-jobs' results reader
  (:func:`ml_jobs.kube.results.reader_pod`): one container running the reader's command, the reader's small fixed
  requests and limits (no GPU), a deadline of at most the reader's, only read-only claims, no priority class. A
  forged reader (any image can call anything ``python3``) is bounded by that shape: a fraction of a CPU, 64 MiB,
  five minutes.

Kueue's own Configuration (``infra.addons.queues.manager_config``) is the second line: in the team namespaces it
manages Jobs without a queue name too, holding them suspended, so a Job that got past the policy still waits.
"""

from __future__ import annotations

import json
from typing import Any

import pulumi

from infra.addons.team_policy import Check, create_rule, declare, policy_object, team_binding
from infra.config import StackConfig
from ml_jobs import queueing
from ml_jobs.kube import results

__all__ = [
    "JOBS_POLICY",
    "JOB_CONTROLLER_USERS",
    "PODS_POLICY",
    "TeamQueuePolicy",
    "bindings",
    "checks",
    "policies",
]

JOBS_POLICY = "herd-team-queue-jobs"
PODS_POLICY = "herd-team-queue-pods"
# Who creates a Job's pods: the Job controller, as kube-controller-manager runs it with
# --use-service-account-credentials (kubeadm's default, and the local cluster's), or without.
JOB_CONTROLLER_USERS = ("system:serviceaccount:kube-system:job-controller", "system:kube-controller-manager")
_LABEL = json.dumps(queueing.QUEUE_LABEL)
_C = "variables.c"  # the pod's one container


def _cel(value: Any) -> str:
    """A CEL literal for a JSON value (CEL's string escapes are JSON's for the ASCII text used here)."""
    return json.dumps(value, separators=(", ", ": "))


def _queue_of_namespace(cfg: StackConfig) -> str:
    """CEL: the LocalQueue of the request's (team) namespace."""
    queues = {team.name: queueing.queue_name(team.name) for team in cfg.teams}
    return f"{_cel(queues)}[request.namespace]"


def _reader_shape() -> dict[str, str]:
    """CEL, per property of ml-jobs' results reader pod: does the pod being created have it."""
    command = results.reader_command("python3")[1:]  # the interpreter is the experiment's, any path
    pinned = " && ".join(f"{_C}.command[{i + 1}] == {_cel(arg)}" for i, arg in enumerate(command))
    # Each resource as the reader sets it (Kubernetes' canonical quantities), nothing more: no GPU.
    sized = [f"has({_C}.resources.{part})" for part in results.READER_RESOURCES] + [
        f"{_C}.resources.{part}.size() == {len(amounts)} && "
        + " && ".join(
            f"{key} in {_C}.resources.{part} && string({_C}.resources.{part}[{key}]) == {_cel(value)}"
            for key, value in ((_cel(name), value) for name, value in amounts.items())
        )
        for part, amounts in results.READER_RESOURCES.items()
    ]
    return {
        "one container": (
            "object.spec.containers.size() == 1 "
            "&& (!has(object.spec.initContainers) || object.spec.initContainers.size() == 0)"
        ),
        "command": (
            f"has({_C}.command) && {_C}.command.size() == {len(command) + 1} && {pinned} && !has({_C}.args)"
        ),
        "resources": f"has({_C}.resources) && " + " && ".join(sized),
        "deadline": (
            'object.spec.restartPolicy == "Never" && has(object.spec.activeDeadlineSeconds) '
            f"&& object.spec.activeDeadlineSeconds <= {results.READER_DEADLINE_SECONDS}"
        ),
        "read-only claims": (
            "has(object.spec.volumes) && object.spec.volumes.all(v, has(v.persistentVolumeClaim) "
            "&& has(v.persistentVolumeClaim.readOnly) && v.persistentVolumeClaim.readOnly) "
            f"&& (!has({_C}.volumeMounts) || {_C}.volumeMounts.all(m, has(m.readOnly) && m.readOnly))"
        ),
        "priority": '!has(object.spec.priorityClassName) || object.spec.priorityClassName == ""',
    }


def _words(*parts: str) -> str:
    """CEL: the concatenation of ``parts``, each a CEL expression, or fixed words when written ``'=words'``."""
    return " + ".join(_cel(p[1:]) if p.startswith("=") else p for p in parts)


def checks(cfg: StackConfig) -> dict[str, list[Check]]:
    """Each policy's validations (the queue of the request's namespace is the policy's variable ``queue``)."""
    del cfg
    labels = "object.metadata.labels"
    named = f"{labels}[{_LABEL}]"
    where = (
        "=: in team namespace ",
        "request.namespace",
        "= work goes through the team queue ",
        "variables.queue",
    )
    how = (f"=; label it {queueing.QUEUE_LABEL}=", "variables.queue", "= (ml-jobs submit does)")
    jobs = [
        Check(
            expression=f"has({labels}) && {_LABEL} in {labels}",
            message_expression=_words(
                "=herd: Job ", "object.metadata.name", "= names no team queue", *where, *how
            ),
            message=f"Jobs in team namespaces must name the team queue ({queueing.QUEUE_LABEL})",
        ),
        Check(
            expression=f"!has({labels}) || !({_LABEL} in {labels}) || {named} == variables.queue",
            message_expression=_words(
                "=herd: Job ", "object.metadata.name", "= names queue ", named, "=, not its team's", *where
            ),
            message="Jobs in team namespaces must name their own namespace's team queue",
        ),
    ]
    differs = [f'(variables.{_var(name)} ? "" : {_cel(" " + name + ";")})' for name in _reader_shape()]
    pods = [
        Check(
            expression=" && ".join(f"variables.{_var(name)}" for name in _reader_shape()),
            message_expression=_words(
                "=herd: pod ",
                "object.metadata.name",
                "= is neither a Job's nor ml-jobs' results reader (unlike the reader in:",
                *differs,
                "=)",
                *where,
                f"=; submit a Job labelled {queueing.QUEUE_LABEL}=",
                "variables.queue",
                "= (ml-jobs submit does)",
            ),
            message="pods in team namespaces must be a Job's (through the team queue) or ml-jobs' results reader",
        ),
    ]
    return {JOBS_POLICY: jobs, PODS_POLICY: pods}


def _var(name: str) -> str:
    """The CEL variable holding one reader property (``read-only claims`` -> ``reader_read_only_claims``)."""
    return "reader_" + name.replace("-", " ").replace(" ", "_")


def policies(cfg: StackConfig) -> list[dict[str, Any]]:
    """The two ValidatingAdmissionPolicies, as the API server receives them."""
    checked = checks(cfg)
    queue = {"name": "queue", "expression": _queue_of_namespace(cfg)}
    shape = [{"name": _var(name), "expression": expr} for name, expr in _reader_shape().items()]
    specs: dict[str, dict[str, Any]] = {
        JOBS_POLICY: {
            "matchConstraints": {"resourceRules": [create_rule("batch", ["jobs"])]},
            "variables": [queue],
        },
        PODS_POLICY: {
            "matchConstraints": {"resourceRules": [create_rule("", ["pods"])]},
            # A Job's pods are the Job controller's to create: the Job went through the queue already.
            "matchConditions": [
                {
                    "name": "not-a-jobs-pod",
                    "expression": f"!(request.userInfo.username in {_cel(list(JOB_CONTROLLER_USERS))})",
                }
            ],
            "variables": [queue, {"name": "c", "expression": "object.spec.containers[0]"}, *shape],
        },
    }
    return [policy_object(name, matched, checked[name]) for name, matched in specs.items()]


def bindings(cfg: StackConfig) -> list[dict[str, Any]]:
    """A binding per policy that applies it, refusing (Deny), in the team namespaces."""
    return [team_binding(name, cfg) for name in (JOBS_POLICY, PODS_POLICY)]


class TeamQueuePolicy(pulumi.ComponentResource):
    """The queue policies and their bindings over every team namespace.

    Attributes:
        bindings: the ValidatingAdmissionPolicyBindings (what team namespaces wait for before submitters get in).
    """

    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions) -> None:
        super().__init__("herd:addons:TeamQueuePolicy", name, None, opts)
        self.bindings = declare(self, name, policies(cfg), bindings(cfg))
        self.register_outputs({"policies": [JOBS_POLICY, PODS_POLICY]})
