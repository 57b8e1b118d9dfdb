"""status on the real control plane: the real Job controller, scheduler, eviction API, quota admission, TTL and
garbage collector decide; KWOK's simulated nodes end each run as its spec's ``env`` says."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from ml_jobs import layout
from ml_jobs.kube import list_experiments, registry, submit, sweep_status
from ml_jobs.kube.status import compute_runs, parse_indexes
from tests.ml_jobs.cluster.conftest import GPU_PRODUCT, TeamCluster, experiment, outcomes

pytestmark = pytest.mark.real_cluster

HOLD = {"HERD_SIMULATED_HOLD": "1"}  # runs keep running until their pod is deleted


def metrics_message(metrics: dict[str, Any]) -> str:
    """The termination message the entry shim writes for ``metrics`` (its own function)."""
    message = layout.termination_message(metrics, "accuracy")
    assert message is not None
    return message


def _requests_of_status(cluster: TeamCluster, api: Any, name: str) -> list[tuple[str, str]]:
    cluster.reset_log()
    sweep_status(api, name)
    return [(r.method, r.path.replace(name, "EXP")) for r in cluster.log]


def test_status_costs_the_same_requests_for_10_and_1000_runs(cluster: TeamCluster, api: Any) -> None:
    # GIVEN two sweeps, 10 and 1,000 runs, whose first runs are running on the real cluster
    submit(api, experiment(10, env=HOLD, name="small"), owner="alice")
    submit(api, experiment(1000, env=HOLD, name="big"), owner="alice")
    for name in ("small", "big"):
        cluster.wait(f"4 running pods of {name}", lambda n=name: len(_running(cluster, n)) == 4)

    small = _requests_of_status(cluster, api, "small")
    big = _requests_of_status(cluster, api, "big")
    status = sweep_status(api, "big")

    # THEN status reads the same few objects whatever the sweep's size: registry, Job, the Job's pods (by label),
    # and the namespace's events (runs are pending)
    assert small == big and [m for m, _ in big] == ["GET", "GET", "GET", "GET"]
    assert big[2][1].endswith("/pods") and big[3][1].endswith("/events")
    job = cluster.get("jobs", "big")
    assert job is not None
    pod_list = cluster.requests("GET", "/pods")[-1]
    assert pod_list.query == {"labelSelector": f"batch.kubernetes.io/controller-uid={job['metadata']['uid']}"}
    assert len(status.runs) == 1000 and status.counts == {"running": 4, "pending": 996}


def _running(cluster: TeamCluster, job: str) -> list[dict[str, Any]]:
    return [p for p in cluster.pods(job) if p.get("status", {}).get("phase") == "Running"]


def test_a_sweep_with_metrics_a_retry_and_a_final_exit_code(cluster: TeamCluster, api: Any) -> None:
    # GIVEN a 4-run sweep: run 0 succeeds with metrics, run 1 fails once (exit 1) then succeeds, run 2 exits with
    # a final code (2: its index fails at once, not retried), run 3 succeeds
    script = {
        "0": {"exitCode": 0, "message": metrics_message({"accuracy": 0.91, "loss": 0.3})},
        "1/0": {"exitCode": 1},
        "1/1": {"exitCode": 0, "message": metrics_message({"accuracy": 0.88})},
        "2": {"exitCode": 2, "reason": "Error"},
        "3": {"exitCode": 0},
    }
    exp = experiment(4, env=outcomes(script), parallelism=2, retries=1, final_exit_codes=[2])
    submit(api, exp, owner="alice")

    # WHEN the real Job controller has run it to the end
    job = cluster.wait_job("bert-sweep")
    status = sweep_status(api, "bert-sweep")

    # THEN each run's state, attempts, exit code and metrics are what happened
    assert status.finished and status.job_state == "failed: FailedIndexes"
    assert job["status"]["completedIndexes"] == "0,1,3" and job["status"]["failedIndexes"] == "2"
    assert [(r.index, r.state, r.attempts, r.exit_code) for r in status.runs] == [
        (0, "succeeded", 1, 0),
        (1, "succeeded", 2, 0),
        (2, "failed", 1, 2),
        (3, "succeeded", 1, 0),
    ]
    assert status.runs[0].metrics == {"accuracy": 0.91, "loss": 0.3}  # from the real termination message
    assert status.runs[1].metrics == {"accuracy": 0.88}
    assert all(r.node and r.node.startswith("gpu-0") for r in status.runs)  # the H100 servers
    # The retry of run 1 is the Job controller's: same index, its failure counted on the new pod.
    retry = [p for p in cluster.pods("bert-sweep") if p["metadata"]["annotations"][_INDEX] == "1"][-1]
    assert retry["metadata"]["annotations"]["batch.kubernetes.io/job-index-failure-count"] == "1"
    # The end was recorded once, with where and how each run ended.
    assert status.recorded
    record = registry.read(api, "bert-sweep")
    assert record is not None
    rev = record.latest()
    assert rev is not None and rev.state == "finished" and rev.outcome == "failed: FailedIndexes"
    assert rev.counts == {"succeeded": 3, "failed": 1}
    rows = record.runs(1)
    assert [(r["state"], r["exitCode"], r["attempts"]) for r in rows] == [
        ("succeeded", 0, 1),
        ("succeeded", 0, 2),
        ("failed", 2, 1),
        ("succeeded", 0, 1),
    ]
    assert rows[0]["metrics"] == {"accuracy": 0.91, "loss": 0.3} and rows[0]["params"] is None
    assert record.params_of(1)(0) == exp.sweep.params(0)  # derived from the recorded spec, not stored per run
    cluster.reset_log()
    again = sweep_status(api, "bert-sweep")
    # Recorded once only; afterwards status reads registry and Job, not the pods again, and says the same.
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in cluster.log] == [
        ("GET", "bert-sweep.registry"),
        ("GET", "bert-sweep"),
    ]
    assert [(r.state, r.attempts, r.exit_code, r.node, r.metrics) for r in again.runs] == [
        (r.state, r.attempts, r.exit_code, r.node, r.metrics) for r in status.runs
    ]


_INDEX = "batch.kubernetes.io/job-completion-index"


def test_a_run_on_a_drained_node_is_retried_elsewhere_and_not_counted_as_a_failure(
    cluster: TeamCluster, api: Any
) -> None:
    # GIVEN a run with no retries left to spend, running on an H100 server
    submit(api, experiment(1, env=HOLD, retries=0), owner="alice")
    pod = cluster.wait("the run's pod running", lambda: _running(cluster, "bert-sweep"))[0]
    node = pod["spec"]["nodeName"]

    # WHEN the operator drains that server (the real kubectl: cordon, then the eviction API)
    kubectl = [str(cluster.local.bin / "kubectl"), f"--kubeconfig={cluster.local.admin_kubeconfig}"]
    try:
        subprocess.run(
            [
                *kubectl,
                "drain",
                node,
                "--ignore-daemonsets",
                "--timeout=60s",
                "--pod-selector=job-name=bert-sweep",
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        retry = cluster.wait(
            "the run retried on another node",
            lambda: [p for p in _running(cluster, "bert-sweep") if p["spec"]["nodeName"] != node],
        )[0]
    finally:
        subprocess.run([*kubectl, "uncordon", node], check=True, capture_output=True)

    # THEN the eviction marked the old pod DisruptionTarget, the podFailurePolicy ignored it, and status says why
    annotations = retry["metadata"]["annotations"]
    assert annotations["batch.kubernetes.io/job-index-failure-count"] == "0"
    assert annotations["batch.kubernetes.io/job-index-ignored-failure-count"] == "1"
    job = cluster.get("jobs", "bert-sweep")
    assert job is not None and job["status"].get("failed", 0) == 0 and not job["status"].get("failedIndexes")
    status = sweep_status(api, "bert-sweep")
    assert [(r.state, r.node) for r in status.runs] == [("running", retry["spec"]["nodeName"])]


def test_why_pending_names_each_cause_from_the_real_scheduler_and_quota(cluster: TeamCluster, api: Any) -> None:
    # GIVEN four sweeps that cannot all run on the example site
    gpu = {"cpu": "1", "memory": "1Gi", "gpus": 1, "gpu_product": GPU_PRODUCT}
    too_big = experiment(1, name="too-big", resources={**gpu, "gpus": 8})  # no server has 8 GPUs
    cpu_on_gpu_pool = experiment(  # a CPU-only run sent to the A100 pool, whose servers are GPU-tainted
        1, name="no-toleration", resources={"cpu": "1", "memory": "1Gi"}, nodes={"pool": "onprem-a100"}
    )
    nowhere = experiment(
        1, name="nowhere", resources={"cpu": "1", "memory": "1Gi"}, nodes={"pool": "no-such-pool"}
    )
    # The team's quota allows 8 GPUs, and too-big's pending pod already holds them (quota counts requests of pods
    # that exist, scheduled or not): the real quota admission refuses every pod of this sweep.
    over_quota = experiment(3, name="over-quota", env=HOLD, parallelism=3, resources={**gpu, "gpus": 4})
    for exp in (too_big, cpu_on_gpu_pool, nowhere, over_quota):
        submit(api, exp, owner="alice")

    def causes(name: str) -> list[str]:  # in any order: equal counts are listed by text
        found = sorted(str(c) for c in sweep_status(api, name).causes)
        return [] if any("no reason reported yet" in c for c in found) else found

    # THEN each sweep's status names its cause, read from the real scheduler's conditions and events and the
    # Job controller's FailedCreate event
    assert cluster.wait("too-big pending", lambda: causes("too-big")) == sorted(
        [
            "1 run: 2/9 nodes lack free nvidia.com/gpu",  # gpu-01, gpu-02: 4 H100s each
            "1 run: 2/9 nodes have taints the run does not tolerate",  # cp-01, gpu-04 (kept for the vision team)
            f"1 run: 5/9 nodes don't match nvidia.com/gpu.product in ({GPU_PRODUCT},{GPU_PRODUCT}-SHARED)",
        ]
    )
    assert cluster.wait("no-toleration pending", lambda: causes("no-toleration")) == sorted(
        [
            "1 run: 6/9 nodes have taints the run does not tolerate",  # the GPU servers and the control plane
            "1 run: 3/9 nodes don't match herd.dev/pool=onprem-a100",
        ]
    )
    assert cluster.wait("nowhere pending", lambda: causes("nowhere")) == sorted(
        [
            "1 run: 6/9 nodes have taints the run does not tolerate",  # tainted before their labels are looked at
            "1 run: 3/9 nodes don't match herd.dev/pool=no-such-pool",  # the CPU servers and the CPU burst node
        ]
    )
    assert cluster.wait("over-quota pending", lambda: causes("over-quota")) == sorted(
        [
            "3 runs: namespace quota herd-team-quota exceeded (requested: requests.nvidia.com/gpu=4, used: "
            "requests.nvidia.com/gpu=8, limited: requests.nvidia.com/gpu=8)"
        ]
    )


def test_after_the_ttl_removed_the_job_status_ls_and_the_registry_remain(cluster: TeamCluster, api: Any) -> None:
    # GIVEN a finished sweep whose status was looked at (it recorded the end)
    script = {"*": {"exitCode": 0, "message": metrics_message({"accuracy": 0.7})}}
    submit(api, experiment(2, env=outcomes(script)), owner="alice")
    cluster.wait_job("bert-sweep")
    assert sweep_status(api, "bert-sweep").recorded
    # WHEN its TTL runs out (shortened here: the spec's smallest TTL is a minute) and the real TTL controller
    # deletes the Job, and the garbage collector its dependents
    cluster.patch("jobs", "bert-sweep", {"spec": {"ttlSecondsAfterFinished": 1}})
    cluster.wait("the Job gone", lambda: cluster.get("jobs", "bert-sweep") is None)
    cluster.wait("the sweep ConfigMap collected", lambda: cluster.get("configmaps", "bert-sweep-sweep") is None)
    cluster.wait("the pods collected", lambda: not cluster.pods("bert-sweep"))
    cluster.reset_log()

    status = sweep_status(api, "bert-sweep")
    summary = list_experiments(api)

    # THEN status and ls read what ran from the registry, which is nobody's dependent
    assert cluster.get("configmaps", "bert-sweep.registry") is not None
    assert status.job_state == "complete" and status.finished
    assert [(r.state, r.metrics) for r in status.runs] == [("succeeded", {"accuracy": 0.7})] * 2
    assert all(r.node for r in status.runs)
    assert [(s.experiment, s.state, s.counts) for s in summary] == [("bert-sweep", "complete", {"succeeded": 2})]
    assert len(cluster.log) == 2 + 3  # status: registry + Job (404); ls: registry list + Job list + pod list


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


def test_unknown_experiment_is_one_line(cluster: TeamCluster, api: Any) -> None:
    from ml_jobs.errors import UnknownExperimentError

    with pytest.raises(UnknownExperimentError, match=f"no experiment 'nope' in namespace '{cluster.namespace}'"):
        sweep_status(api, "nope")
