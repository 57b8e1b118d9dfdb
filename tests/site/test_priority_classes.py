"""The PriorityClasses a spec's ``priority`` names are the ones the Pulumi program creates: both come from
ml_jobs.priority, and this holds the example stack's plan to it."""

from __future__ import annotations

from pathlib import Path

from infra.plan import load_stack_file, run_plan
from ml_jobs import priority
from ml_jobs.render import render
from ml_jobs.spec import Experiment

REPO = Path(__file__).resolve().parents[2]


def test_the_example_stack_creates_every_class_a_spec_can_name():
    # GIVEN the example stack's plan WHEN its PriorityClasses are compared with ml_jobs.priority THEN they are the
    # same classes, values and preemption policies, and none is the global default
    plan = run_plan(load_stack_file(REPO / "Pulumi.example.yaml"))
    created = {
        r.inputs["metadata"]["name"]: (r.inputs["value"], r.inputs["preemptionPolicy"], r.inputs["globalDefault"])
        for r in plan.of_type("kubernetes:scheduling.k8s.io/v1:PriorityClass")
    }
    expected = {
        c.name: (c.value, "PreemptLowerPriority" if c.preempts else "Never", False)
        for c in priority.PRIORITY_CLASSES
    }
    assert created == expected
    for level in ("high", "normal", "low"):
        exp = Experiment(name="p", image="python:3.11", command=["python"], priority=level)
        assert render(exp, owner="x").job["spec"]["template"]["spec"]["priorityClassName"] in created
