"""Team namespaces: where engineers submit runs. Each gets Pod Security labels, a ResourceQuota (the team's quota;
where Kueue runs, all Kueue may admit to the team: ``infra.addons.queues.admissible``), a LimitRange (default and
maximum per container, so one run cannot take a whole server), the ``herd-submitter`` Role bound to the team's
groups, and the team's ReadWriteMany results claim on the NAS. The Role's rules are
``ml_jobs.rbac.SUBMITTER_RULES``: what ``ml-jobs`` sends in a team namespace, defined beside the code that sends
it. The submitters are bound only once the storage policies (infra/addons/team_policy.py) guard the namespace.
"""

from __future__ import annotations

from collections.abc import Mapping

import pulumi
import pulumi_kubernetes as k8s

from infra.config import StackConfig, Team
from ml_jobs import taxonomy
from ml_jobs.rbac import SUBMITTER_ROLE, SUBMITTER_RULES

__all__ = [
    "SUBMITTER_ROLE",
    "SUBMITTER_RULES",
    "TEAM_LABEL",
    "TeamNamespace",
    "pod_security_labels",
    "quota_hard",
]

_MANAGED = {"app.kubernetes.io/managed-by": "herd"}
# Which team a namespace is (its ClusterQueue admits workloads only from namespaces with this label).
TEAM_LABEL = "herd.dev/team"


def pod_security_labels(enforce: str) -> dict[str, str]:
    """Pod Security admission labels: enforce ``enforce``, warn and audit at ``restricted``."""
    return {
        "pod-security.kubernetes.io/enforce": enforce,
        "pod-security.kubernetes.io/enforce-version": "latest",
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/audit": "restricted",
    }


class TeamNamespace(pulumi.ComponentResource):
    """One team's namespace and everything in it.

    ``admissible`` is what Kueue may admit to the team where Kueue runs (``infra.addons.queues.admissible``): the
    ResourceQuota's totals then. None without Kueue: the totals are the team's quota.

    Attributes:
        namespace: the Namespace.
        results_claim: the team's results PersistentVolumeClaim (protected: `pulumi destroy` refuses it).
    """

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        team: Team,
        *,
        storage_class: pulumi.Resource,
        storage_policy: list[pulumi.Resource],
        admissible: Mapping[str, str] | None,
        opts: pulumi.ResourceOptions,
    ) -> None:
        super().__init__("herd:addons:TeamNamespace", name, None, opts)
        labels = {**_MANAGED, TEAM_LABEL: team.name}
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=team.name, labels={**labels, **pod_security_labels("baseline")}
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])
        _quota(name, team, labels, admissible, in_ns)
        _limits(name, team, labels, in_ns)
        # No one submits before the storage policies keep them to the team's own results.
        _submitters(self, name, team, labels, in_ns, wait_for=storage_policy)
        self.results_claim = _results_claim(
            cfg,
            name,
            team,
            labels,
            pulumi.ResourceOptions(parent=self, depends_on=[self.namespace, storage_class], protect=True),
        )
        self.register_outputs({"namespace": team.name})


def _meta(team: Team, name: str, labels: dict[str, str]) -> k8s.meta.v1.ObjectMetaArgs:
    return k8s.meta.v1.ObjectMetaArgs(name=name, namespace=team.name, labels=labels)


def quota_hard(team: Team, admissible: Mapping[str, str] | None = None) -> dict[str, str]:
    """The ResourceQuota's hard totals: CPU and memory requests, memory limits, GPUs (what Kueue may admit where it
    runs, ``admissible``; the team's quota without Kueue), pods (the team's).

    Kueue does not see the ResourceQuota: were the quota less than Kueue may admit (a team borrowing idle on-prem
    quota past its own total), the pods past it would be refused while Kueue holds the borrowed quota for them.
    """
    q = team.quota
    totals = admissible or {"cpu": q.cpu, "memory": q.memory, taxonomy.GPU_RESOURCE: str(q.gpu)}
    return {
        "requests.cpu": totals["cpu"],
        "requests.memory": totals["memory"],
        "limits.memory": totals["memory"],
        f"requests.{taxonomy.GPU_RESOURCE}": totals[taxonomy.GPU_RESOURCE],
        "pods": str(q.pods),
    }


def _quota(
    name: str,
    team: Team,
    labels: dict[str, str],
    admissible: Mapping[str, str] | None,
    opts: pulumi.ResourceOptions,
) -> None:
    k8s.core.v1.ResourceQuota(
        f"{name}-quota",
        metadata=_meta(team, "herd-team-quota", labels),
        spec=k8s.core.v1.ResourceQuotaSpecArgs(hard=quota_hard(team, admissible)),
        opts=opts,
    )


def _limits(name: str, team: Team, labels: dict[str, str], opts: pulumi.ResourceOptions) -> None:
    """Default and maximum per container: what keeps one run from taking a whole server."""
    lim = team.limits
    k8s.core.v1.LimitRange(
        f"{name}-limits",
        metadata=_meta(team, "herd-container-limits", labels),
        spec=k8s.core.v1.LimitRangeSpecArgs(
            limits=[
                k8s.core.v1.LimitRangeItemArgs(
                    type="Container",
                    default={"cpu": lim.default_cpu, "memory": lim.default_memory},
                    default_request={"cpu": lim.default_request_cpu, "memory": lim.default_request_memory},
                    max={"cpu": lim.max_cpu, "memory": lim.max_memory},
                )
            ]
        ),
        opts=opts,
    )


def _submitters(
    parent: pulumi.Resource,
    name: str,
    team: Team,
    labels: dict[str, str],
    opts: pulumi.ResourceOptions,
    *,
    wait_for: list[pulumi.Resource],
) -> None:
    """The ``herd-submitter`` Role (what ml-jobs sends, no more) and its binding to the team's groups."""
    role = k8s.rbac.v1.Role(
        f"{name}-submitter",
        metadata=_meta(team, SUBMITTER_ROLE, labels),
        rules=[
            # What `ml-jobs` sends in a team namespace, and no more: one definition, owned by ml_jobs.
            k8s.rbac.v1.PolicyRuleArgs(api_groups=[r.api_group], resources=list(r.resources), verbs=list(r.verbs))
            for r in SUBMITTER_RULES
        ],
        opts=opts,
    )
    if team.submitters:
        k8s.rbac.v1.RoleBinding(
            f"{name}-submitters",
            metadata=_meta(team, "herd-submitters", labels),
            role_ref=k8s.rbac.v1.RoleRefArgs(
                api_group="rbac.authorization.k8s.io", kind="Role", name=SUBMITTER_ROLE
            ),
            subjects=[
                k8s.rbac.v1.SubjectArgs(kind="Group", name=group, api_group="rbac.authorization.k8s.io")
                for group in team.submitters
            ],
            opts=pulumi.ResourceOptions(parent=parent, depends_on=[role, *wait_for]),
        )


def _results_claim(
    cfg: StackConfig, name: str, team: Team, labels: dict[str, str], opts: pulumi.ResourceOptions
) -> k8s.core.v1.PersistentVolumeClaim:
    """The team's ReadWriteMany claim on the NAS. Results outlive the stack: `pulumi destroy` stops here (``opts``
    protect it) until someone unprotects the claim on purpose."""
    return k8s.core.v1.PersistentVolumeClaim(
        f"{name}-results",
        metadata=_meta(team, cfg.results_claim_name, labels),
        spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
            access_modes=["ReadWriteMany"],
            storage_class_name=cfg.storage_class_name,
            resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": cfg.results_claim_size}),
        ),
        opts=opts,
    )
