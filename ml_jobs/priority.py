"""How urgent a run is: the one definition of herd's PriorityClasses.

The Pulumi program creates these classes (``infra/addons/priority.py``); a spec's ``priority: high|normal|low``
renders ``priorityClassName: herd-<priority>`` on every pod of its Job. None is the cluster's global default, so
pods created without a class (by anything but ml-jobs) keep priority 0, below all three.

Plain data, standard library only: the Pulumi program imports it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["DEFAULT", "PRIORITY_CLASSES", "Priority", "PriorityClassSpec", "class_name"]

Priority = Literal["high", "normal", "low"]
DEFAULT: Priority = "normal"


@dataclass(frozen=True)
class PriorityClassSpec:
    """One PriorityClass herd creates."""

    priority: Priority
    value: int
    preempts: bool
    description: str

    @property
    def name(self) -> str:
        """The PriorityClass's name: ``herd-<priority>``."""
        return class_name(self.priority)


def class_name(priority: Priority) -> str:
    """The PriorityClass of a spec's ``priority``."""
    return f"herd-{priority}"


PRIORITY_CLASSES = (
    PriorityClassSpec("high", 10000, True, "Urgent runs: may preempt normal and low runs."),
    PriorityClassSpec("normal", 1000, True, "Default for training runs: may preempt low runs."),
    PriorityClassSpec("low", 100, False, "Opportunistic sweeps: fill idle capacity, never preempt."),
)
