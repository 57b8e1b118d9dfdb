"""Why-pending from the messages the scheduler and cluster-autoscaler really write (table-driven, no server)."""

from __future__ import annotations

import pytest

from ml_jobs.kube.pending import explain, scheduler_causes

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
