"""logs, cancel, ls and results against the emulator."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest

from ml_jobs.errors import ResultsError, UnknownExperimentError
from ml_jobs.kube import cancel, list_experiments, plot, read_results, registry, run_logs, submit, to_csv
from ml_jobs.kube.results import READER_SCRIPT
from tests.ml_jobs.cluster.conftest import GPU_PRODUCT, experiment
from tests.ml_jobs.cluster.doubles import (
    JobControllerDouble,
    KubeletDouble,
    ResultsVolumeDouble,
    SchedulerDouble,
    node,
)
from tests.ml_jobs.cluster.emulator import EmulatedCluster

pytestmark = pytest.mark.emulator


def _nodes() -> list[dict[str, Any]]:
    return [node("gpu-1", labels={"nvidia.com/gpu.product": GPU_PRODUCT}, gpus=8, cpu="64", memory="512Gi")]


def _start_all(controller: JobControllerDouble, scheduler: SchedulerDouble, kubelet: KubeletDouble) -> None:
    for p in controller.pods("bert-sweep"):
        if p["status"]["phase"] == "Pending" and scheduler.schedule(p["metadata"]["name"]):
            kubelet.start(p["metadata"]["name"], log=f"starting {p['metadata']['name']}\n")


def _finish_all(cluster: EmulatedCluster, volume: ResultsVolumeDouble, runs: int = 6) -> tuple[Any, ...]:
    """Submit, run every run to success writing metrics.json to the volume double, and return the doubles."""
    controller = JobControllerDouble(cluster)
    scheduler = SchedulerDouble(cluster, _nodes())
    kubelet = KubeletDouble(cluster, controller)
    api = cluster.api()
    exp = experiment(runs, parallelism=runs)
    submit(api, exp, owner="alice")
    controller.sync("bert-sweep")
    _start_all(controller, scheduler, kubelet)
    for p in controller.pods("bert-sweep"):
        i = int(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"])
        params = exp.sweep.params(i)
        volume.write_metrics("bert-sweep", i, {"accuracy": 0.5 + i / 100, "loss": 1.0 - i / 10})
        (volume.root / "bert-sweep" / f"run-{i:05d}" / "params.json").write_text(str(params).replace("'", '"'))
        kubelet.finish(p["metadata"]["name"], 0, log=f"accuracy {0.5 + i / 100}\n")
    return api, controller, scheduler, kubelet, exp


def test_logs_of_a_run_by_index_or_name_latest_attempt(cluster: EmulatedCluster) -> None:
    controller = JobControllerDouble(cluster)
    scheduler = SchedulerDouble(cluster, _nodes())
    kubelet = KubeletDouble(cluster, controller)
    api = cluster.api()
    submit(api, experiment(3), owner="alice")
    first = controller.sync("bert-sweep")
    _start_all(controller, scheduler, kubelet)
    kubelet.finish(first[1]["metadata"]["name"], 1, log="Traceback: CUDA out of memory\n")  # attempt 1 fails
    _start_all(controller, scheduler, kubelet)  # attempt 2 starts
    retry = next(
        p
        for p in controller.pods("bert-sweep")
        if p["metadata"]["annotations"]["batch.kubernetes.io/job-index-failure-count"] == "1"
    )
    cluster.logs[("team-a", retry["metadata"]["name"])] = "attempt 2\nepoch 1 loss 0.7\n"
    cluster.reset_log()

    lines = list(run_logs(api, "bert-sweep", "run-00001"))

    assert lines == ["attempt 2", "epoch 1 loss 0.7"]
    assert [(r.method, r.path) for r in cluster.log] == [
        ("GET", "/api/v1/namespaces/team-a/configmaps/bert-sweep.registry"),
        ("GET", "/apis/batch/v1/namespaces/team-a/jobs/bert-sweep"),
        ("GET", "/api/v1/namespaces/team-a/pods"),
        ("GET", f"/api/v1/namespaces/team-a/pods/{retry['metadata']['name']}/log"),
    ]
    uid = controller.job("bert-sweep")["metadata"]["uid"]
    assert cluster.log[2].query["labelSelector"] == (
        f"batch.kubernetes.io/controller-uid={uid},batch.kubernetes.io/job-completion-index=1"
    )
    assert list(run_logs(api, "bert-sweep", "0", follow=True, tail=1)) == [
        f"starting {first[0]['metadata']['name']}"
    ]
    assert cluster.log[-1].query == {"follow": "true", "tailLines": "1"}
    api.close()


def test_logs_of_a_pending_run_say_why(cluster: EmulatedCluster) -> None:
    controller = JobControllerDouble(cluster)
    scheduler = SchedulerDouble(cluster, [node("cpu-1")])
    api = cluster.api()
    submit(api, experiment(2), owner="alice")
    pods = controller.sync("bert-sweep")
    scheduler.schedule(pods[0]["metadata"]["name"])

    with pytest.raises(UnknownExperimentError, match=r"run 0 of 'bert-sweep' has not started: .*no node matches"):
        list(run_logs(api, "bert-sweep", "0"))
    with pytest.raises(UnknownExperimentError, match=r"has runs 0..1, not 7"):
        list(run_logs(api, "bert-sweep", "7"))
    with pytest.raises(UnknownExperimentError, match=r"give a run index \(3\) or a run name"):
        list(run_logs(api, "bert-sweep", "three"))
    api.close()


def test_cancel_records_then_deletes_and_explains_what_happens_to_pods(
    cluster: EmulatedCluster, volume: ResultsVolumeDouble
) -> None:
    controller = JobControllerDouble(cluster)
    scheduler = SchedulerDouble(cluster, [node("gpu-1", labels={"nvidia.com/gpu.product": GPU_PRODUCT}, gpus=2)])
    kubelet = KubeletDouble(cluster, controller)
    api = cluster.api()
    submit(api, experiment(5, parallelism=3), owner="alice")
    pods = controller.sync("bert-sweep")
    _start_all(controller, scheduler, kubelet)  # two run, one cannot be placed
    kubelet.finish(pods[0]["metadata"]["name"], 0)
    _start_all(controller, scheduler, kubelet)
    cluster.reset_log()

    result = cancel(api, "bert-sweep")

    assert [(r.method, r.path) for r in cluster.log] == [
        ("GET", "/api/v1/namespaces/team-a/configmaps/bert-sweep.registry"),
        ("GET", "/apis/batch/v1/namespaces/team-a/jobs/bert-sweep"),
        ("GET", "/api/v1/namespaces/team-a/pods"),
        ("PATCH", "/api/v1/namespaces/team-a/configmaps/bert-sweep.registry"),
        ("DELETE", "/apis/batch/v1/namespaces/team-a/jobs/bert-sweep"),
    ]
    assert cluster.log[-1].body["propagationPolicy"] == "Background"
    assert (result.running, result.waiting, result.finished, result.grace_seconds) == (2, 2, 1, 30)
    text = result.explain()
    assert "2 running run(s) get SIGTERM and 30s to stop before SIGKILL" in text
    assert "2 run(s) that had not started never will" in text
    # The garbage collector (double) removed the pods and the sweep ConfigMap; the registry stays.
    assert cluster.all("pods") == []
    assert [c["metadata"]["name"] for c in cluster.all("configmaps")] == ["bert-sweep.registry"]
    record = registry.read(api, "bert-sweep")
    assert record is not None
    rev = record.latest()
    assert rev is not None and (rev.state, rev.outcome) == ("cancelled", "cancelled")
    assert rev.counts == {"succeeded": 1, "cancelled": 4}
    summary = list_experiments(api)
    assert [(s.experiment, s.state, s.counts) for s in summary] == [
        ("bert-sweep", "cancelled", {"succeeded": 1, "cancelled": 4})
    ]
    # Cancelling again: nothing left to delete, said so.
    assert not cancel(api, "bert-sweep").deleted
    api.close()


def test_ls_counts_runs_by_state_for_every_experiment_in_three_requests(cluster: EmulatedCluster) -> None:
    api = cluster.api()
    controller = JobControllerDouble(cluster)
    submit(api, experiment(3), owner="alice")
    submit(api, experiment(4, name="gpt-sweep"), owner="bob")
    controller.sync("bert-sweep")
    cluster.reset_log()

    found = list_experiments(api)

    assert [(e.experiment, e.runs, e.counts, e.submitted_by) for e in found] == [
        ("bert-sweep", 3, {"pending": 3}, "alice"),
        ("gpt-sweep", 4, {"pending": 4}, "bob"),
    ]
    assert [r.method for r in cluster.log] == ["GET", "GET", "GET"]
    assert cluster.log[0].query == {
        "labelSelector": "herd.dev/component=registry,app.kubernetes.io/managed-by=ml-jobs"
    }
    api.close()


def test_results_through_a_reader_pod_ranked_csv_and_plot(
    cluster: EmulatedCluster, volume: ResultsVolumeDouble, tmp_path: Path
) -> None:
    api, _, _, kubelet, exp = _finish_all(cluster, volume)
    # The kubelet double runs the reader pod's real shell script against the volume double.
    cluster._created_hooks.append(
        lambda plural, ns, name: (
            plural == "pods" and "-results-" in name and _run_reader_later(cluster, kubelet, name, volume)
        )
    )
    cluster.reset_log()

    found = read_results(api, "bert-sweep", sleep=lambda s: _drain(cluster))

    reader_name = next(r.body for r in cluster.log if r.method == "POST")["metadata"]["name"]
    ns = "/api/v1/namespaces/team-a"
    assert [(r.method, r.path) for r in cluster.log] == [
        ("GET", f"{ns}/configmaps/bert-sweep.registry"),
        ("GET", "/apis/batch/v1/namespaces/team-a/jobs/bert-sweep"),  # run states ...
        ("GET", f"{ns}/pods"),  # ... from one pod list
        ("PATCH", f"{ns}/configmaps/bert-sweep.registry"),  # the sweep ended: recorded
        ("GET", f"{ns}/configmaps/bert-sweep.registry"),
        ("POST", f"{ns}/pods"),  # the reader pod
        ("GET", f"{ns}/pods/{reader_name}"),  # not done yet (the kubelet double runs it on the first poll)
        ("GET", f"{ns}/pods/{reader_name}"),  # Succeeded
        ("GET", f"{ns}/pods/{reader_name}/log"),
        ("DELETE", f"{ns}/pods/{reader_name}"),
        ("PATCH", f"{ns}/configmaps/bert-sweep.registry"),  # final metrics recorded
    ]
    reader = next(r.body for r in cluster.log if r.method == "POST")
    assert reader["spec"]["volumes"] == [
        {"name": "results", "persistentVolumeClaim": {"claimName": "team-results", "readOnly": True}}
    ]
    assert reader["spec"]["containers"][0]["command"] == ["sh", "-c", READER_SCRIPT]
    assert reader["spec"]["activeDeadlineSeconds"] == 300
    assert [p for p in cluster.all("pods") if "-results-" in p["metadata"]["name"]] == []  # deleted again
    assert found.source.startswith("reader pod bert-sweep-results-")
    ranked = found.ranked()
    assert [r.index for r in ranked] == [5, 4, 3, 2, 1, 0]
    assert ranked[0].metrics == {"accuracy": 0.55, "loss": 0.5}
    assert ranked[0].params == exp.sweep.params(5)

    rows = list(csv.DictReader(io.StringIO(to_csv(found))))
    assert rows[0]["rank"] == "1" and rows[0]["run"] == "run-00005" and rows[0]["state"] == "succeeded"
    assert float(rows[0]["accuracy"]) == 0.55 and set(rows[0]) >= {"lr", "batch", "loss"}

    png = plot(found, tmp_path / "sweep.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    # The final metrics are now in the registry too.
    rows_recorded = registry.read(api, "bert-sweep").runs(1)  # type: ignore[union-attr]
    assert rows_recorded[5]["metrics"] == {"accuracy": 0.55, "loss": 0.5}
    api.close()


_pending_readers: list[tuple[Any, str, ResultsVolumeDouble]] = []


def _run_reader_later(
    cluster: EmulatedCluster, kubelet: KubeletDouble, name: str, volume: ResultsVolumeDouble
) -> bool:
    # Called on the server's loop (inside the create): the kubelet double runs it on the next poll instead.
    _pending_readers.append((kubelet, name, volume))
    return True


def _drain(cluster: EmulatedCluster) -> None:
    while _pending_readers:
        kubelet, name, volume = _pending_readers.pop()
        kubelet.run_reader(name, {"team-results": volume.root})


def test_results_from_a_mounted_volume_need_no_pod_and_work_after_the_job_is_gone(
    cluster: EmulatedCluster, volume: ResultsVolumeDouble
) -> None:
    api, *_ = _finish_all(cluster, volume, runs=4)
    api.delete("jobs", "bert-sweep")  # TTL
    cluster.reset_log()

    found = read_results(api, "bert-sweep", results_path=str(volume.root))

    # No pod: the registry, the Job (404: gone before anyone recorded its end, which is now recorded), and the
    # metrics read from the mounted volume recorded too.
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in cluster.log] == [
        ("GET", "bert-sweep.registry"),
        ("GET", "bert-sweep"),
        ("PATCH", "bert-sweep.registry"),
        ("GET", "bert-sweep.registry"),
        ("PATCH", "bert-sweep.registry"),
    ]
    assert [r.index for r in found.ranked()] == [3, 2, 1, 0]
    assert found.states == {}  # nobody saw the runs end; their metrics are on the volume all the same
    record = registry.read(api, "bert-sweep")
    assert record is not None and record.latest().state == "gone"  # type: ignore[union-attr]
    assert record.runs(1)[3]["metrics"] == {"accuracy": 0.53, "loss": 0.7}
    with pytest.raises(ResultsError, match="no such directory"):
        read_results(api, "bert-sweep", results_path=str(volume.root / "elsewhere"))
    api.close()


def test_a_reader_pod_that_fails_is_deleted_and_reported(
    cluster: EmulatedCluster, volume: ResultsVolumeDouble
) -> None:
    api = cluster.api()
    kubelet = KubeletDouble(cluster)
    submit(api, experiment(2), owner="alice")
    # Nothing was ever written for this experiment: the reader's script exits 3 with a message.
    cluster._created_hooks.append(
        lambda plural, ns, name: plural == "pods" and _run_reader_later(cluster, kubelet, name, volume)
    )

    with pytest.raises(ResultsError, match=r"failed reading claim 'team-results': no directory /\S+/bert-sweep"):
        read_results(api, "bert-sweep", sleep=lambda s: _drain(cluster))
    assert cluster.all("pods") == []
    api.close()


def test_a_cut_reader_log_is_noticed_not_half_read() -> None:
    from ml_jobs.kube.results import parse_reader_output

    full = ["==> run-00000/metrics.json", '{"accuracy": 0.5}', "==> run-00001/metrics.json", '{"accuracy": 0.6}']
    assert parse_reader_output([*full, "==| files: 2"]) == {
        "run-00000/metrics.json": '{"accuracy": 0.5}',
        "run-00001/metrics.json": '{"accuracy": 0.6}',
    }
    with pytest.raises(ResultsError, match="printed 2 files but its log holds 1"):
        parse_reader_output([*full[2:], "==| files: 2"])  # the head rotated away
    with pytest.raises(ResultsError, match="no file count at its end"):
        parse_reader_output(full)


@pytest.mark.parametrize("version", ["1.33", "1.37"])
def test_objects_the_backend_creates_pass_the_api_schema(cluster: EmulatedCluster, version: str) -> None:
    import kubernetes_validate

    from ml_jobs.kube.results import reader_pod

    api = cluster.api()
    submit(api, experiment(3), owner="alice")
    registry_cm = next(
        r.body for r in cluster.log if r.method == "POST" and r.body["metadata"]["name"].endswith(".registry")
    )
    owner_patched = cluster.get("configmaps", "bert-sweep-sweep")
    assert owner_patched is not None
    for obj in (reader_pod("bert-sweep", "team-results", "bert-sweep"), registry_cm):
        kubernetes_validate.validate(obj, version, strict=True)
    refs = owner_patched["metadata"]["ownerReferences"]
    kubernetes_validate.validate(
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "ownerReferences": refs}},
        version,
        strict=True,
    )
    api.close()


def test_plot_handles_categorical_parameters_and_refuses_what_it_cannot_draw(tmp_path: Path) -> None:
    from ml_jobs.kube.results import ExperimentResults
    from ml_jobs.results import RunResult
    from ml_jobs.spec import Objective

    runs = [
        RunResult(i, f"run-{i:05d}", tmp_path, {"optimizer": opt, "lr": lr}, {"loss": loss})
        for i, (opt, lr, loss) in enumerate([("adam", 1e-4, 0.3), ("sgd", 1e-2, 0.5), ("adam", 1e-3, 0.2)])
    ]
    found = ExperimentResults("x", 1, Objective(metric="loss", goal="min"), runs, "mounted", ["optimizer", "lr"])
    assert [r.index for r in found.ranked()] == [2, 0, 1]
    png = plot(found, tmp_path / "x.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ResultsError, match="no run of 'x' reported 'accuracy'"):
        plot(ExperimentResults("x", 1, Objective(metric="accuracy"), runs, "mounted", ["lr"]), tmp_path / "y.png")
    with pytest.raises(ResultsError, match="no objective metric"):
        plot(ExperimentResults("x", 1, None, runs, "mounted", ["lr"]), tmp_path / "z.png")


def test_status_with_the_volume_mounted_shows_and_records_final_metrics(
    cluster: EmulatedCluster, volume: ResultsVolumeDouble
) -> None:
    from ml_jobs.kube import sweep_status

    api, *_ = _finish_all(cluster, volume, runs=3)
    cluster.reset_log()

    status = sweep_status(api, "bert-sweep", results_path=str(volume.root))

    assert [r.metrics for r in status.runs] == [
        {"accuracy": 0.5, "loss": 1.0},
        {"accuracy": 0.51, "loss": 0.9},
        {"accuracy": 0.52, "loss": 0.8},
    ]
    assert status.recorded and [r.method for r in cluster.log] == ["GET", "GET", "GET", "PATCH"]
    rows = registry.read(api, "bert-sweep").runs(1)  # type: ignore[union-attr]
    assert [row["metrics"]["accuracy"] for row in rows] == [0.5, 0.51, 0.52]
    api.close()
