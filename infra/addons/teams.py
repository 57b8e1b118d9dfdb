"""Team namespaces: where engineers submit runs. Each gets Pod Security labels, a ResourceQuota (the team's share),
a LimitRange (default and maximum per container, so one run cannot take a whole server), the ``herd-submitter``
Role bound to the team's groups, and the team's ReadWriteMany results claim on the NAS. The Role's rules are
``ml_jobs.rbac.SUBMITTER_RULES``: what ``ml-jobs`` sends in a team namespace, defined beside the code that sends
it. The submitters are bound only once the storage policies (infra/addons/team_policy.py) guard the namespace.
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra.config import StackConfig, Team
from ml_jobs import taxonomy
from ml_jobs.rbac import SUBMITTER_ROLE, SUBMITTER_RULES

__all__ = ["SUBMITTER_ROLE", "SUBMITTER_RULES", "TeamNamespace", "pod_security_labels"]

_MANAGED = {"app.kubernetes.io/managed-by": "herd"}


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
        opts: pulumi.ResourceOptions,
    ) -> None:
        super().__init__("herd:addons:TeamNamespace", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = {**_MANAGED, "herd.dev/team": team.name}
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=team.name, labels={**labels, **pod_security_labels("baseline")}
            ),
            opts=child,
        )
        in_ns = pulumi.ResourceOptions(parent=self, depends_on=[self.namespace])

        def meta(object_name: str, **extra) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(name=object_name, namespace=team.name, labels=labels, **extra)

        q, lim = team.quota, team.limits
        k8s.core.v1.ResourceQuota(
            f"{name}-quota",
            metadata=meta("herd-team-quota"),
            spec=k8s.core.v1.ResourceQuotaSpecArgs(
                hard={
                    "requests.cpu": q.cpu,
                    "requests.memory": q.memory,
                    "limits.memory": q.memory,
                    f"requests.{taxonomy.GPU_RESOURCE}": str(q.gpu),
                    "pods": str(q.pods),
                }
            ),
            opts=in_ns,
        )
        k8s.core.v1.LimitRange(
            f"{name}-limits",
            metadata=meta("herd-container-limits"),
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
            opts=in_ns,
        )
        role = k8s.rbac.v1.Role(
            f"{name}-submitter",
            metadata=meta(SUBMITTER_ROLE),
            rules=[
                # What `ml-jobs` sends in a team namespace, and no more: one definition, owned by ml_jobs.
                k8s.rbac.v1.PolicyRuleArgs(
                    api_groups=[r.api_group], resources=list(r.resources), verbs=list(r.verbs)
                )
                for r in SUBMITTER_RULES
            ],
            opts=in_ns,
        )
        if team.submitters:
            k8s.rbac.v1.RoleBinding(
                f"{name}-submitters",
                metadata=meta("herd-submitters"),
                role_ref=k8s.rbac.v1.RoleRefArgs(
                    api_group="rbac.authorization.k8s.io", kind="Role", name=SUBMITTER_ROLE
                ),
                subjects=[
                    k8s.rbac.v1.SubjectArgs(kind="Group", name=group, api_group="rbac.authorization.k8s.io")
                    for group in team.submitters
                ],
                # No one submits before the storage policy keeps them to the team's own results.
                opts=pulumi.ResourceOptions(parent=self, depends_on=[role, *storage_policy]),
            )
        self.results_claim = k8s.core.v1.PersistentVolumeClaim(
            f"{name}-results",
            metadata=meta(cfg.results_claim_name),
            spec=k8s.core.v1.PersistentVolumeClaimSpecArgs(
                access_modes=["ReadWriteMany"],
                storage_class_name=cfg.storage_class_name,
                resources=k8s.core.v1.VolumeResourceRequirementsArgs(requests={"storage": cfg.results_claim_size}),
            ),
            # Results outlive the stack: `pulumi destroy` stops here until someone unprotects the claim on purpose.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.namespace, storage_class], protect=True),
        )
        self.register_outputs({"namespace": team.name})
