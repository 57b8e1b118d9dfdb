"""status against the emulator, with pods / Job status / events written by the component doubles."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ml_jobs.kube import list_experiments, registry, submit, sweep_status
from ml_jobs.kube.status import compute_runs, parse_indexes
from tests.ml_jobs.cluster.conftest import GPU_PRODUCT, experiment
from tests.ml_jobs.cluster.doubles import (
    AutoscalerDouble,
    JobControllerDouble,
    KubeletDouble,
    SchedulerDouble,
    node,
)
from tests.ml_jobs.cluster.emulator import EmulatedCluster

pytestmark = pytest.mark.emulator


def _sweep_with_states(cluster: EmulatedCluster, api: Any, runs: int) -> list[tuple[str, str]]:
    """Submit a sweep of ``runs`` and write pods for it: a quarter succeeded, some running, the rest pending
    (unschedulable). Pods go in with one bulk write: metadata and spec as the Job controller double makes them,
    statuses abbreviated to the fields status reads (phase, container state, the PodScheduled condition)."""
    submit(api, experiment(runs), owner="alice")
    controller = JobControllerDouble(cluster)
    job = controller.job("bert-sweep")
    pods = []
    unschedulable = (
        "0/5 nodes are available: 2 Insufficient nvidia.com/gpu, 3 node(s) didn't match Pod's node "
        "affinity/selector. preemption: 0/5 nodes are available: 2 No preemption victims found for incoming "
        "pod, 3 Preemption is not helpful for scheduling."
    )
    for i in range(runs):
        pod = controller.make_pod(job, i)
        c = pod["spec"]["containers"][0]
        if i % 4 == 0:
            pod["spec"]["nodeName"] = "gpu-h100-1"
            pod["status"] = {
                "phase": "Succeeded",
                "containerStatuses": [
                    {
                        "name": c["name"],
                        "image": c["image"],
                        "state": {
                            "terminated": {
                                "exitCode": 0,
                                "reason": "Completed",
                                "startedAt": "2026-11-29T01:00:00Z",
                                "finishedAt": "2026-11-29T01:10:00Z",
                            }
                        },
                    }
                ],
            }
        elif i % 4 == 1:
            pod["spec"]["nodeName"] = "gpu-h100-2"
            pod["status"] = {
                "phase": "Running",
                "containerStatuses": [
                    {
                        "name": c["name"],
                        "image": c["image"],
                        "state": {"running": {"startedAt": "2026-11-29T01:00:00Z"}},
                    }
                ],
            }
        else:
            pod["status"] = {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": unschedulable,
                        "lastProbeTime": None,
                        "lastTransitionTime": "2026-11-29T01:00:00Z",
                    }
                ],
            }
        pods.append(pod)
    cluster.put_many("pods", pods)
    done = [i for i in range(runs) if i % 4 == 0]
    cluster.patch(
        "jobs",
        "bert-sweep",
        {"status": {"active": runs - len(done), "succeeded": len(done), "completedIndexes": _fmt(done)}},
    )
    cluster.reset_log()
    sweep_status(api, "bert-sweep")
    return [(r.method, r.path) for r in cluster.log]


def _fmt(indexes: list[int]) -> str:
    from tests.ml_jobs.cluster.doubles import _format

    return _format(set(indexes))


def test_status_costs_the_same_requests_for_10_and_1000_runs(cluster: EmulatedCluster, api: Any) -> None:
    small = _sweep_with_states(cluster, api, 10)
    # A second, bigger experiment in the same namespace.
    cluster.faults.clear()
    api_big = cluster.api()
    big_exp = experiment(1000, name="bert-big")
    submit(api_big, big_exp, owner="alice")
    controller = JobControllerDouble(cluster)
    job = controller.job("bert-big")
    pods = [controller.make_pod(job, i) for i in range(1000)]
    cluster.put_many("pods", pods)
    cluster.reset_log()
    status = sweep_status(api_big, "bert-big")
    big = [(r.method, r.path.replace("bert-big", "bert-sweep")) for r in cluster.log]

    assert len(status.runs) == 1000 and status.counts == {"pending": 1000}
    assert len(small) == len(big) == 4
    assert [m for m, _ in small] == [m for m, _ in big] == ["GET", "GET", "GET", "GET"]
    assert small[:2] == big[:2]
    assert small[2][1].endswith("/pods") and small[3][1].endswith("/events")
    pod_list = cluster.requests("GET", "/pods")[0]
    assert pod_list.query == {"labelSelector": f"batch.kubernetes.io/controller-uid={job['metadata']['uid']}"}
    api_big.close()


def test_per_run_state_node_attempts_duration_and_why_pending(cluster: EmulatedCluster, api: Any) -> None:
    requests = _sweep_with_states(cluster, api, 12)
    status = sweep_status(api, "bert-sweep")

    assert len(requests) == 4  # registry, Job, pods, events (runs are pending)
    assert status.counts == {"pending": 6, "running": 3, "succeeded": 3}
    first, second = status.runs[0], status.runs[1]
    assert (first.state, first.node, first.attempts, first.exit_code) == ("succeeded", "gpu-h100-1", 1, 0)
    assert first.duration(first.finished) == 600  # type: ignore[arg-type]
    assert (second.state, second.node) == ("running", "gpu-h100-2")
    assert [str(c) for c in status.causes] == [
        "6 runs: 2/5 nodes lack free nvidia.com/gpu",
        f"6 runs: 3/5 nodes don't match nvidia.com/gpu.product in ({GPU_PRODUCT},{GPU_PRODUCT}-SHARED)",
    ]


def _drive(cluster: EmulatedCluster, nodes: list[dict[str, Any]], exp_runs: int = 4) -> tuple[Any, ...]:
    controller = JobControllerDouble(cluster)
    scheduler = SchedulerDouble(cluster, nodes)
    kubelet = KubeletDouble(cluster, controller)
    api = cluster.api()
    submit(api, experiment(exp_runs, parallelism=2), owner="alice")
    pods = controller.sync("bert-sweep")
    return api, controller, scheduler, kubelet, pods


def test_a_full_sweep_with_a_retry_a_failure_and_the_final_record(cluster: EmulatedCluster) -> None:
    nodes = [
        node("gpu-1", labels={"nvidia.com/gpu.product": GPU_PRODUCT}, gpus=4),
    ]
    api, controller, scheduler, kubelet, pods = _drive(cluster, nodes)
    for p in pods:
        assert scheduler.schedule(p["metadata"]["name"]) == "gpu-1"
        kubelet.start(p["metadata"]["name"], log="epoch 1\n")
    # run 0 succeeds; run 1 fails once (exit 1), is retried, then fails again: backoffLimitPerIndex=1 used up.
    kubelet.finish(pods[0]["metadata"]["name"], 0, message='{"accuracy": 0.91}')
    kubelet.finish(pods[1]["metadata"]["name"], 1)
    status = sweep_status(api, "bert-sweep")
    assert [(r.index, r.state, r.attempts) for r in status.runs] == [
        (0, "succeeded", 1),
        (1, "retrying", 2),
        (2, "pending", 1),  # its pod exists (parallelism 2 freed a slot): attempt 1, not started
        (3, "pending", 0),
    ]
    assert status.runs[0].metrics == {"accuracy": 0.91}  # from the termination message
    first_try = {x["metadata"]["name"] for x in pods}
    retry = next(
        p
        for p in controller.pods("bert-sweep")
        if p["metadata"]["name"] not in first_try
        and p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "1"
    )
    assert retry["metadata"]["annotations"]["batch.kubernetes.io/job-index-failure-count"] == "1"

    for p in controller.pods("bert-sweep"):
        if p["status"]["phase"] == "Pending":
            scheduler.schedule(p["metadata"]["name"])
            kubelet.start(p["metadata"]["name"])
    status = sweep_status(api, "bert-sweep")
    assert [(r.state, r.attempts) for r in status.runs][:2] == [("succeeded", 1), ("running", 2)]
    for _ in range(4):  # the kubelet finishes what runs; the controller starts what is left
        for p in controller.pods("bert-sweep"):
            if p["status"]["phase"] == "Pending":
                scheduler.schedule(p["metadata"]["name"])
                kubelet.start(p["metadata"]["name"])
        for p in controller.pods("bert-sweep"):
            if p["status"]["phase"] == "Running":
                failing = p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"] == "1"
                kubelet.finish(p["metadata"]["name"], 2 if failing else 0, reason="OOMKilled" if failing else None)
    cluster.reset_log()

    status = sweep_status(api, "bert-sweep")

    assert status.finished and status.job_state == "failed: FailedIndexes"
    assert [(r.state, r.attempts, r.exit_code) for r in status.runs] == [
        ("succeeded", 1, 0),
        ("failed", 2, 2),
        ("succeeded", 1, 0),
        ("succeeded", 1, 0),
    ]
    assert status.runs[1].reason == "OOMKilled"
    # The sweep ended: its record was written once (no events list: nothing pending).
    assert [r.method for r in cluster.log] == ["GET", "GET", "GET", "PATCH"]
    assert status.recorded
    record = registry.read(api, "bert-sweep")
    assert record is not None
    rev = record.latest()
    assert rev is not None and rev.state == "finished" and rev.outcome == "failed: FailedIndexes"
    assert rev.counts == {"succeeded": 3, "failed": 1}
    rows = record.runs(1)
    assert [(r["state"], r["node"], r["exitCode"], r["attempts"]) for r in rows][:2] == [
        ("succeeded", "gpu-1", 0, 1),
        ("failed", "gpu-1", 2, 2),
    ]
    assert rows[0]["metrics"] == {"accuracy": 0.91}
    assert rows[0]["params"] == experiment(4).sweep.params(0)
    cluster.reset_log()
    sweep_status(api, "bert-sweep")
    assert "PATCH" not in [r.method for r in cluster.log]  # recorded once only
    api.close()


def test_after_the_ttl_removed_the_job_status_and_ls_read_the_registry(cluster: EmulatedCluster) -> None:
    nodes = [node("gpu-1", labels={"nvidia.com/gpu.product": GPU_PRODUCT}, gpus=4)]
    api, _, scheduler, kubelet, pods = _drive(cluster, nodes, exp_runs=2)
    for p in pods:
        scheduler.schedule(p["metadata"]["name"])
        kubelet.start(p["metadata"]["name"])
        kubelet.finish(p["metadata"]["name"], 0)
    sweep_status(api, "bert-sweep")  # sees it finished: records it
    # The TTL controller deletes the Job (background propagation: pods and the sweep ConfigMap go with it).
    api.delete("jobs", "bert-sweep")
    assert cluster.all("pods") == [] and [c["metadata"]["name"] for c in cluster.all("configmaps")] == [
        "bert-sweep.registry"
    ]
    cluster.reset_log()

    status = sweep_status(api, "bert-sweep")
    summary = list_experiments(api)

    assert status.job_state == "complete" and status.finished
    assert [(r.state, r.node) for r in status.runs] == [("succeeded", "gpu-1"), ("succeeded", "gpu-1")]
    assert [(s.experiment, s.state, s.counts) for s in summary] == [("bert-sweep", "complete", {"succeeded": 2})]
    assert len(cluster.log) == 2 + 3  # status: registry + Job (404); ls: registry list + Job list + pod list
    api.close()


def test_why_pending_taint_quota_autoscaler_and_image_pull(cluster: EmulatedCluster) -> None:
    gpu_taint = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    nodes = [
        node("gpu-1", labels={"nvidia.com/gpu.product": GPU_PRODUCT}, gpus=1, taints=gpu_taint),
        node("cpu-1"),
    ]
    controller = JobControllerDouble(cluster)
    scheduler = SchedulerDouble(cluster, nodes)
    kubelet = KubeletDouble(cluster, controller)
    autoscaler = AutoscalerDouble(cluster)
    api = cluster.api()
    # A CPU-only sweep whose pods forget the GPU toleration cannot use the GPU node: taint + selector.
    exp = experiment(4, parallelism=3)
    submit(api, exp, owner="alice")
    job = controller.job("bert-sweep")
    job_no_toleration = copy.deepcopy(job)
    job_no_toleration["spec"]["template"]["spec"].pop("tolerations")
    p0 = controller.make_pod(job_no_toleration, 0)
    cluster.put("pods", p0)
    scheduler.schedule(p0["metadata"]["name"])
    p1 = controller.make_pod(job, 1)
    cluster.put("pods", p1)
    assert scheduler.schedule(p1["metadata"]["name"]) == "gpu-1"
    kubelet.image_pull_failing(p1["metadata"]["name"])
    p2 = controller.make_pod(job, 2)
    cluster.put("pods", p2)
    scheduler.schedule(p2["metadata"]["name"])  # gpu-1 is taken: Insufficient nvidia.com/gpu
    autoscaler.triggered(p2["metadata"]["name"], "eks-gpu-h100-spot", 0, 1, 4)
    controller.quota_exceeded(
        "bert-sweep",
        3,
        quota="team-a-quota",
        resource="requests.nvidia.com/gpu",
        requested="1",
        used="4",
        limited="4",
    )
    cluster.patch("jobs", "bert-sweep", {"status": {"active": 3}})

    status = sweep_status(api, "bert-sweep")

    assert [str(c) for c in status.causes] == [
        "2 runs: 1/2 nodes don't match nvidia.com/gpu.product in "
        "(NVIDIA-H100-80GB-HBM3,NVIDIA-H100-80GB-HBM3-SHARED)",
        "1 run: 1/2 nodes have taint nvidia.com/gpu=present, which the run does not tolerate",
        "1 run: 1/2 nodes lack free nvidia.com/gpu",
        "1 run: a cloud pool is scaling up: eks-gpu-h100-spot 0->1 (max 4)",
        "1 run: image registry.example.com/nlp/bert:2.1 cannot be pulled (ImagePullBackOff): "
        'Back-off pulling image "registry.example.com/nlp/bert:2.1"',
        "1 run: namespace quota team-a-quota exceeded (requested: requests.nvidia.com/gpu=1, used: "
        "requests.nvidia.com/gpu=4, limited: requests.nvidia.com/gpu=4)",
    ]
    api.close()


def test_compute_runs_from_job_status_alone() -> None:
    job = {
        "metadata": {"uid": "u"},
        "spec": {"completions": 6, "parallelism": 6},
        "status": {"completedIndexes": "0-2,5", "failedIndexes": "4", "active": 1},
    }
    runs = compute_runs(job, [], 6)
    assert [r.state for r in runs] == ["succeeded"] * 3 + ["pending", "failed", "succeeded"]
    assert parse_indexes("0-2,5,7-8") == {0, 1, 2, 5, 7, 8}
    assert parse_indexes("") == set()


def test_unknown_experiment_is_one_line(api: Any) -> None:
    from ml_jobs.errors import UnknownExperimentError

    with pytest.raises(UnknownExperimentError, match="no experiment 'nope' in namespace 'team-a'"):
        sweep_status(api, "nope")
