"""PriorityClasses for training runs. Higher-priority runs may preempt lower ones when the cluster is full; the
lowest class never preempts anything, for sweeps that should only fill idle capacity."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from ml_jobs.priority import PRIORITY_CLASSES, PriorityClassSpec

# The classes are defined once, in ml_jobs.priority: a spec's `priority` names them.
__all__ = ["PRIORITY_CLASSES", "PriorityClassSpec", "PriorityClasses"]


class PriorityClasses(pulumi.ComponentResource):
    """herd's PriorityClasses (none is the global default: pods without a class keep priority 0)."""

    def __init__(self, name: str, opts: pulumi.ResourceOptions) -> None:
        super().__init__("herd:addons:PriorityClasses", name, None, opts)
        self.classes = [
            k8s.scheduling.v1.PriorityClass(
                spec.name,
                metadata=k8s.meta.v1.ObjectMetaArgs(
                    name=spec.name, labels={"app.kubernetes.io/managed-by": "herd"}
                ),
                value=spec.value,
                global_default=False,
                preemption_policy="PreemptLowerPriority" if spec.preempts else "Never",
                description=spec.description,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for spec in PRIORITY_CLASSES
        ]
        self.register_outputs({})
