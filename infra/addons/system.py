"""``herd-system``: the namespace of herd's own controllers (NFS provisioner, cluster-autoscaler)."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra.addons.teams import pod_security_labels

__all__ = ["SYSTEM_NAMESPACE", "system_namespace"]

SYSTEM_NAMESPACE = "herd-system"


def system_namespace(opts: pulumi.ResourceOptions) -> k8s.core.v1.Namespace:
    """The namespace, at Pod Security baseline (the NFS provisioner mounts an NFS volume; nothing needs more)."""
    return k8s.core.v1.Namespace(
        SYSTEM_NAMESPACE,
        metadata=k8s.meta.v1.ObjectMetaArgs(
            name=SYSTEM_NAMESPACE,
            labels={"app.kubernetes.io/managed-by": "herd", **pod_security_labels("baseline")},
        ),
        opts=opts,
    )
