"""PriorityClasses for training runs. Higher-priority runs may preempt lower ones when the cluster is full; the
lowest class never preempts anything, for sweeps that should only fill idle capacity."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

__all__ = ["PRIORITY_CLASSES", "PriorityClassSpec", "PriorityClasses"]


@dataclass(frozen=True)
class PriorityClassSpec:
    """One PriorityClass herd creates."""

    name: str
    value: int
    preempts: bool
    description: str


PRIORITY_CLASSES = (
    PriorityClassSpec("herd-high", 10000, True, "Urgent runs: may preempt normal and low runs."),
    PriorityClassSpec("herd-normal", 1000, True, "Default for training runs: may preempt low runs."),
    PriorityClassSpec("herd-low", 100, False, "Opportunistic sweeps: fill idle capacity, never preempt."),
)


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
