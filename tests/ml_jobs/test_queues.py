"""Team queues without a cluster: which LocalQueue a sweep goes to (decided from plain data), how the rendered
Job joins it, and the one-line reading of Kueue's messages. The real controller's side is in
cluster/test_queues.py."""

from __future__ import annotations

import pytest

from ml_jobs import queueing
from ml_jobs.errors import SpecError
from ml_jobs.kube.queues import QueueError, choose_queue, workload_state
from ml_jobs.render import render
from ml_jobs.spec import Experiment

SPEC = {
    "name": "s",
    "image": "registry.example.com/a/b:1",
    "command": ["train"],
    "sweep": {"grid": {"lr": [1, 2, 3, 4]}},
}


@pytest.mark.parametrize(
    ("wanted", "available", "chosen"),
    [
        (None, None, None),  # no Kueue: scheduled as before
        (None, [], None),  # Kueue, but no queue in this namespace
        (None, ["vision"], "vision"),  # the namespace's one queue
        (None, ["vision", "other"], "vision"),  # several: the team's own (named after the namespace)
        ("other", ["vision", "other"], "other"),
    ],
)
def test_the_queue_a_sweep_goes_to(wanted, available, chosen):
    assert choose_queue(wanted, available, "vision") == chosen


@pytest.mark.parametrize(
    ("wanted", "available", "fragment"),
    [
        ("gpu", None, "queue: 'gpu': this cluster runs no Kueue"),
        ("gpu", ["vision"], "queue: 'gpu' is not a LocalQueue of namespace vision (it has: vision)"),
        (None, ["a", "b"], "namespace vision has several LocalQueues (a, b); name one"),
    ],
)
def test_a_queue_that_cannot_be_chosen_is_one_line(wanted, available, fragment):
    with pytest.raises(QueueError) as info:
        choose_queue(wanted, available, "vision")
    assert fragment in str(info.value) and "\n" not in str(info.value)


def test_a_queued_job_carries_the_label_and_is_created_suspended():
    job = render(Experiment(**SPEC), queue="vision").job
    assert job["metadata"]["labels"][queueing.QUEUE_LABEL] == "vision"
    assert job["spec"]["suspend"] is True
    assert job["metadata"]["annotations"][queueing.MIN_PARALLELISM_ANNOTATION] == "1"
    assert queueing.QUEUE_LABEL not in job["spec"]["template"]["metadata"]["labels"]
    # the spec's own queue wins; without either, the Job is as without Kueue
    assert (
        render(Experiment(**SPEC, queue="x"), queue="vision").job["metadata"]["labels"][queueing.QUEUE_LABEL]
        == "x"
    )
    plain = render(Experiment(**SPEC)).job
    assert queueing.QUEUE_LABEL not in plain["metadata"]["labels"] and "suspend" not in plain["spec"]


def test_a_bad_queue_name_names_the_field():
    with pytest.raises(SpecError) as info:
        Experiment(**SPEC, queue="Team Q")
    assert str(info.value).startswith("<python>: queue: 'Team Q' is not a queue name")


def _workload(conditions, flavor="", count=4, admitted=0):
    status = {"conditions": [{"type": t, "status": s, "reason": r, "message": m} for t, s, r, m in conditions]}
    if flavor:
        status["admission"] = {
            "podSetAssignments": [
                {"count": admitted or count, "flavors": {"cpu": flavor, "nvidia.com/gpu": flavor}}
            ]
        }
    return {"spec": {"podSets": [{"count": count}]}, "status": status}


def test_each_queue_state_is_one_line():
    capped = (
        "couldn't assign flavors to pod set main: insufficient quota for nvidia.com/gpu in flavor onprem-gpu, "
        "previously considered podsets requests (0) + current podset request (10) > maximum capacity (9), "
        "insufficient quota for nvidia.com/gpu in flavor gpu-a10g-spot, previously considered podsets requests "
        "(0) + current podset request (10) > maximum capacity (2)"
    )
    cases = [
        (None, "queued in q: Kueue has not taken the sweep in yet"),
        (
            _workload([("QuotaReserved", "False", "Pending", capped)]),
            "queued in q: on-prem is full and the team's cloud cap is reached "
            "(onprem-gpu nvidia.com/gpu 10 > 9, gpu-a10g-spot nvidia.com/gpu 10 > 2)",
        ),
        (
            _workload([("QuotaReserved", "True", "", ""), ("Admitted", "True", "", "")], "gpu-a10g-spot"),
            "admitted in q to gpu-a10g-spot (cloud pool gpu-a10g-spot)",
        ),
        (
            _workload([("Admitted", "True", "", "")], "onprem-gpu", count=8, admitted=6),
            "admitted in q to onprem-gpu (on-prem), 6 of 8 runs at once",
        ),
        (
            _workload(
                [
                    (
                        "Preempted",
                        "True",
                        "InCohortReclamation",
                        "Preempted to accommodate a workload (UID: x) "
                        "due to reclamation within the cohort; preemptor path: /a/b",
                    )
                ]
            ),
            "preempted in q: the team it borrowed from took its quota back; waiting to be admitted again",
        ),
        (
            {
                **_workload(
                    [
                        (
                            "Preempted",
                            "True",
                            "InClusterQueue",
                            "Preempted to accommodate a workload (UID: x, JobUID: y) due to prioritization in "
                            "the ClusterQueue; preemptor path: /herd/q; preemptee path: /herd/q",
                        )
                    ]
                ),
                "spec": {"priorityClassRef": {"name": "herd-low"}, "podSets": [{"count": 4}]},
            },
            "preempted in q: a higher-priority sweep of the team needed its quota (this one is herd-low); "
            "waiting to be admitted again",
        ),
        (
            _workload(
                [
                    ("Admitted", "True", "", ""),
                    ("Requeued", "True", "Preempted", "Preempted to accommodate a workload"),
                    (
                        "Preempted",
                        "False",
                        "QuotaReserved",
                        "Previously: Preempted to accommodate a workload (UID: x, JobUID: y) due to "
                        "prioritization in the ClusterQueue; preemptor path: /herd/q; preemptee path: /herd/q",
                    ),
                ],
                "gpu-a10g-spot",
                count=6,
                admitted=2,
            ),
            "admitted in q to gpu-a10g-spot (cloud pool gpu-a10g-spot), 2 of 6 runs at once; preempted before "
            "(a higher-priority sweep of the team needed its quota) and admitted again",
        ),
        (
            _workload([("Preempted", "True", "New", "Preempted to accommodate a workload due to a rule")]),
            "preempted in q: a rule; waiting to be admitted again",
        ),
        (
            _workload([("Evicted", "True", "PodsReadyTimeout", "Exceeded the PodsReady timeout")]),
            "evicted from q (PodsReadyTimeout): Exceeded the PodsReady timeout",
        ),
    ]
    for workload, line in cases:
        assert workload_state("q", workload).line == line


def test_a_waiting_sweeps_line_says_its_position_where_the_visibility_api_gave_it():
    queued = _workload([("QuotaReserved", "False", "Pending", "insufficient quota for cpu in flavor onprem")])
    assert workload_state("q", queued, position=2).line == "queued in q, position 2: on-prem is full (onprem cpu)"
    assert workload_state("q", queued, position=2).position == 2
    preempted = _workload([("Preempted", "True", "InCohortReclamation", "")])
    assert workload_state("q", preempted, position=1).line == (
        "preempted in q: the team it borrowed from took its quota back; waiting to be admitted again, position 1"
    )
    # without one, as before; an admitted sweep has none to say
    assert workload_state("q", queued).line == "queued in q: on-prem is full (onprem cpu)"
    admitted = _workload([("Admitted", "True", "", "")], "onprem")
    assert workload_state("q", admitted, position=3).line == "admitted in q to onprem (on-prem)"
