"""Why-pending from the messages the scheduler and cluster-autoscaler really write (table-driven, no server)."""

from __future__ import annotations

import pytest

from ml_jobs.kube.pending import explain, scheduler_causes, would_take

POD = {
    "metadata": {"uid": "pod-1"},
    "spec": {
        "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {"key": "herd.dev/location", "operator": "In", "values": ["onprem", "cloud"]}
                            ]
                        }
                    ]
                }
            }
        },
    },
}


@pytest.mark.parametrize(
    ("message", "causes"),
    [
        (
            # The shape in the issue; the real scheduler sorts the reasons as strings.
            "0/5 nodes are available: 3 Insufficient nvidia.com/gpu, 2 node(s) didn't match Pod's node "
            "affinity/selector.",
            [
                "3/5 nodes lack free nvidia.com/gpu",
                "2/5 nodes don't match nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3, herd.dev/location in "
                "(onprem,cloud)",
            ],
        ),
        (
            # Quoted from a cluster-autoscaler issue (kubernetes/autoscaler#5938), with the preemption part.
            "0/6 nodes are available: 2 node(s) didn't match Pod's node affinity/selector, 4 Insufficient cpu. "
            "preemption: 0/6 nodes are available: 2 Preemption is not helpful for scheduling, 4 No preemption "
            "victims found for incoming pod.",
            [
                "2/6 nodes don't match nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3, herd.dev/location in "
                "(onprem,cloud)",
                "4/6 nodes lack free cpu",
            ],
        ),
        (
            "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint "
            "{node-role.kubernetes.io/control-plane: }. preemption: 0/2 nodes are available: 1 No preemption "
            "victims found for incoming pod, 1 Preemption is not helpful for scheduling.",
            [
                "1/2 nodes lack free cpu",
                "1/2 nodes have taint node-role.kubernetes.io/control-plane, which the run does not tolerate",
            ],
        ),
        (
            "0/3 nodes are available: 3 Insufficient memory.",
            ["not enough memory free on any node"],
        ),
        (
            "0/4 nodes are available: 1 node(s) had taint {nvidia.com/gpu: present}, that the pod didn't "
            "tolerate, 3 node(s) were unschedulable.",
            [
                "1/4 nodes have taint nvidia.com/gpu=present, which the run does not tolerate",
                "3/4 nodes are cordoned",
            ],
        ),
        (
            "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector.",
            [
                "no node matches the node selector nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3, "
                "herd.dev/location in (onprem,cloud)"
            ],
        ),
        (
            # The v1.36.3 scheduler of the local real cluster: taints unnamed, DRA's sentence before preemption's.
            "0/9 nodes are available: 2 Insufficient nvidia.com/gpu, 2 node(s) had untolerated taint(s), "
            "5 node(s) didn't match Pod's node affinity/selector. no new claims to deallocate, preemption: "
            "0/9 nodes are available: 9 Preemption is not helpful for scheduling.",
            [
                "2/9 nodes lack free nvidia.com/gpu",
                "2/9 nodes have taints the run does not tolerate",
                "5/9 nodes don't match nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3, herd.dev/location in "
                "(onprem,cloud)",
            ],
        ),
        (
            # The same scheduler while the results claim has no volume (the NFS provisioner is not running).
            "0/9 nodes are available: pod has unbound immediate PersistentVolumeClaims. not found",
            ["its volume claim is not bound (no volume provisioned: is the NFS provisioner running?)"],
        ),
        (
            'persistentvolumeclaim "team-results" not found',
            ['not schedulable: persistentvolumeclaim "team-results" not found'],
        ),
    ],
)
def test_scheduler_messages(message: str, causes: list[str]) -> None:
    assert scheduler_causes(message, POD) == causes


def test_autoscaler_not_triggering_and_counts_over_runs() -> None:
    pending = {
        **POD,
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
                }
            ],
        },
    }
    second = {**pending, "metadata": {"uid": "pod-2"}}
    events = [
        {
            "involvedObject": {"kind": "Pod", "uid": "pod-1"},
            "reason": "TriggeredScaleUp",
            "message": "pod triggered scale-up: [{eks-gpu 0->1 (max: 2)}]",
            "lastTimestamp": "2026-11-29T01:00:00Z",
        },
        {
            "involvedObject": {"kind": "Pod", "uid": "pod-1"},
            "reason": "NotTriggerScaleUp",
            "message": "pod didn't trigger scale-up: 1 max node group size reached",
            "lastTimestamp": "2026-11-29T01:05:00Z",
        },
    ]
    causes = explain([(0, pending), (1, second)], job=None, events=events)
    assert [str(c) for c in causes] == [
        "2 runs: not enough nvidia.com/gpu free on any node",
        # The autoscaler's latest word wins: the pool is at its maximum now.
        "1 run: cluster-autoscaler will not add a node: 1 max node group size reached",
    ]


def test_a_run_whose_node_went_away_is_retried_for_free() -> None:
    # The shape the taint manager / eviction API leave on a pod of a drained or lost node.
    pod = {
        "metadata": {"uid": "p"},
        "spec": {},
        "status": {
            "phase": "Failed",
            "conditions": [
                {
                    "type": "DisruptionTarget",
                    "status": "True",
                    "reason": "DeletionByTaintManager",
                    "message": "Taint manager: deleting due to NoExecute taint",
                }
            ],
        },
    }
    assert [c.text for c in explain([(0, pod)], job=None, events=[])] == [
        "its node went away (DeletionByTaintManager: Taint manager: deleting due to NoExecute taint); "
        "the run is retried without counting it as a failure"
    ]


def _node(name: str, *, cordoned: bool = True, labels=None, taints=None, gpus: int = 0, cpu: str = "16"):
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"unschedulable": cordoned, "taints": taints or []},
        "status": {"allocatable": {"cpu": cpu, "memory": "64Gi", "nvidia.com/gpu": str(gpus), "pods": "110"}},
    }


GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
CORDON_TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}
MAINTENANCE = {"key": "herd.dev/maintenance", "effect": "NoExecute"}
SOFT = {"key": "x", "effect": "PreferNoSchedule"}
H100 = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3", "herd.dev/location": "onprem"}
GPU_POD = {
    **POD,
    "spec": {
        **POD["spec"],
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "containers": [{"resources": {"requests": {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"}}}],
    },
}
CORDONED_MESSAGE = "0/9 nodes are available: 1 Insufficient nvidia.com/gpu, 8 node(s) were unschedulable."


@pytest.mark.parametrize(
    ("nodes", "cordoned"),
    [
        # GIVEN the cluster's nodes (or none: the caller may not list them) THEN the cordon line names the
        # cordoned nodes that would take the run, judged by selector and affinity, taints and allocatable.
        (None, "8/9 nodes are cordoned"),
        (
            [_node("gpu-01", labels=H100, taints=[GPU_TAINT, CORDON_TAINT], gpus=4), _node("cpu-01")],
            "8/9 nodes are cordoned; uncordoned, gpu-01 would take it",
        ),
        (
            [_node(f"gpu-0{i}", labels=H100, taints=[GPU_TAINT], gpus=4) for i in (3, 1, 2)],
            "8/9 nodes are cordoned; uncordoned, gpu-01, gpu-02 or gpu-03 would take it",
        ),
        (
            [_node(f"gpu-0{i}", labels=H100, taints=[GPU_TAINT], gpus=4) for i in range(1, 6)],
            "8/9 nodes are cordoned; uncordoned, gpu-01, gpu-02, gpu-03 or 2 more would take it",
        ),
        (
            [
                _node("gpu-01", labels=H100, taints=[GPU_TAINT], gpus=4, cordoned=False),  # not cordoned
                _node("gpu-02", labels={**H100, "herd.dev/location": "edge"}, taints=[GPU_TAINT], gpus=4),
                _node("gpu-03", labels=H100, taints=[MAINTENANCE], gpus=4),
                _node("gpu-04", labels=H100, taints=[GPU_TAINT], gpus=4, cpu="2"),  # too small
                _node("gpu-05", labels=H100, taints=[GPU_TAINT]),  # no GPUs
                _node("gpu-06", labels=H100, taints=[GPU_TAINT, SOFT], gpus=1),
            ],
            "8/9 nodes are cordoned; uncordoned, gpu-06 would take it",
        ),
        (
            [_node("cpu-01"), _node("cpu-02", labels=H100)],
            "8/9 nodes are cordoned; none of them would take it if uncordoned",
        ),
    ],
)
def test_a_cordoned_cluster_names_the_node_that_would_take_the_run(nodes, cordoned) -> None:
    assert scheduler_causes(CORDONED_MESSAGE, GPU_POD, nodes) == ["1/9 nodes lack free nvidia.com/gpu", cordoned]


@pytest.mark.parametrize(
    ("expression", "labels", "matches"),
    [
        ({"key": "zone", "operator": "NotIn", "values": ["a"]}, {"zone": "b"}, True),
        ({"key": "zone", "operator": "NotIn", "values": ["a"]}, {"zone": "a"}, False),
        ({"key": "zone", "operator": "Exists"}, {}, False),
        ({"key": "zone", "operator": "DoesNotExist"}, {}, True),
        ({"key": "cores", "operator": "Gt", "values": ["8"]}, {"cores": "16"}, True),
        ({"key": "cores", "operator": "Lt", "values": ["8"]}, {"cores": "16"}, False),
        ({"key": "cores", "operator": "Gt", "values": ["8"]}, {"cores": "many"}, False),
    ],
)
def test_node_affinity_operators_as_the_scheduler_reads_them(expression, labels, matches) -> None:
    pod = {
        "spec": {
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [expression]}]
                    }
                }
            }
        }
    }
    assert would_take(pod, _node("n", labels=labels)) is matches


def test_explain_passes_the_nodes_on_to_the_cordon_line() -> None:
    pod = {
        **GPU_POD,
        "status": {
            "phase": "Pending",
            "conditions": [
                {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": CORDONED_MESSAGE}
            ],
        },
    }
    nodes = [_node("gpu-02", labels=H100, taints=[GPU_TAINT], gpus=4)]
    assert [str(c) for c in explain([(0, pod)], job=None, events=[], nodes=nodes)] == [
        "1 run: 1/9 nodes lack free nvidia.com/gpu",
        "1 run: 8/9 nodes are cordoned; uncordoned, gpu-02 would take it",
    ]
