"""logs, cancel, ls and results on the real control plane, as alice: the real Job controller, scheduler, garbage
collector and TTL controller decide; KWOK's nodes end each run as its spec's ``env`` says.

KWOK runs no containers and serves no logs: a log's content and the reader pod's output need a real node (the
next tier); here the requests, the choice of pod, the reader pod's admission and clean-up, and the results read
from the mounted volume (written by :mod:`stand_ins`, as the runs would have) are tested.
"""

from __future__ import annotations

import csv
import io
import json
import re
import ssl
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ml_jobs import layout
from ml_jobs.errors import ResultsError, ServerError, UnknownExperimentError
from ml_jobs.kube import cancel, list_experiments, plot, read_results, registry, run_logs, submit, to_csv
from ml_jobs.kube.results import reader_command, reader_pod
from ml_jobs.render import render
from tests.ml_jobs.cluster.conftest import TeamCluster, experiment, outcomes
from tests.ml_jobs.cluster.stand_ins import results_volume, write_run_results

pytestmark = pytest.mark.real_cluster

HOLD = {"HERD_SIMULATED_HOLD": "1"}  # runs keep running until their pod is deleted
_INDEX = "batch.kubernetes.io/job-completion-index"
_FAILURES = "batch.kubernetes.io/job-index-failure-count"


def metrics_of(i: int) -> dict[str, float]:
    return {"accuracy": round(0.5 + i / 100, 2), "loss": round(1.0 - i / 10, 2)}


def _finished_sweep(cluster: TeamCluster, api: Any, runs: int) -> tuple[Any, Path]:
    """A sweep the real Job controller ran to success, each run's metrics.json and params.json on the volume
    (written by the stand-in for the runs' processes). Returns the experiment and the volume's directory."""
    exp = experiment(runs, parallelism=runs)
    submit(api, exp, owner="alice")
    cluster.wait_job("bert-sweep", "Complete")
    volume = results_volume(cluster.admin, cluster.namespace)
    for i in range(runs):
        write_run_results(volume, layout.experiment_dir_name("bert-sweep"), i, metrics_of(i), exp.sweep.params(i))
    return exp, volume


def _pods_of(cluster: TeamCluster, phase: str, job: str = "bert-sweep") -> list[dict[str, Any]]:
    return [p for p in cluster.pods(job) if p.get("status", {}).get("phase") == phase]


def _pods_of_component(cluster: TeamCluster, component: str, phase: str) -> list[dict[str, Any]]:
    pods = cluster.all("pods", f"herd.dev/component={component}")
    return [p for p in pods if p.get("status", {}).get("phase") == phase]


# ------------------------------------------------------------------------------------------------ logs
def test_logs_of_a_run_ask_for_its_latest_attempts_pod(cluster: TeamCluster, api: Any) -> None:
    # GIVEN a sweep whose run 1 failed once (exit 1) and was retried by the real Job controller
    submit(api, experiment(3, env=outcomes({"1/0": {"exitCode": 1}})), owner="alice")
    cluster.wait_job("bert-sweep", "Complete")
    retry = next(
        p for p in cluster.pods("bert-sweep") if p["metadata"]["annotations"][_INDEX] == "1" and
        p["metadata"]["annotations"][_FAILURES] == "1"
    )  # fmt: skip
    cluster.reset_log()

    # WHEN alice asks for run-00001's log
    with pytest.raises(ServerError) as info:
        list(run_logs(api, "bert-sweep", "run-00001"))

    # THEN one label-selected pod list finds the run's pods, and the log of the latest attempt is asked for
    ns = cluster.namespace
    retry_log = f"/api/v1/namespaces/{ns}/pods/{retry['metadata']['name']}/log"
    assert [(r.method, r.path) for r in cluster.log] == [
        ("GET", f"/api/v1/namespaces/{ns}/configmaps/bert-sweep.registry"),
        ("GET", f"/apis/batch/v1/namespaces/{ns}/jobs/bert-sweep"),
        ("GET", f"/api/v1/namespaces/{ns}/pods"),
        *[("GET", retry_log)] * 3,  # a 5xx is retried (api: 3 attempts)
    ]
    job = cluster.get("jobs", "bert-sweep")
    assert job is not None
    assert cluster.log[2].query["labelSelector"] == (
        f"batch.kubernetes.io/controller-uid={job['metadata']['uid']},batch.kubernetes.io/job-completion-index=1"
    )
    # The real API server allowed it and found the pod, then could not reach a kubelet: KWOK's nodes serve no
    # logs (what a log holds is tested on a real node). The error is one line naming the pod.
    assert all(r.status == 500 for r in cluster.log[3:])
    message = str(info.value)
    assert message.startswith(
        f"the API server failed to log pod '{retry['metadata']['name']}' in namespace '{ns}'"
    )
    assert "containerLogs" in message and "\n" not in message

    cluster.reset_log()
    with pytest.raises(ServerError):
        list(run_logs(api, "bert-sweep", "0", follow=True, tail=1))
    assert cluster.log[-1].path.endswith("/log") and cluster.log[-1].query == {"follow": "true", "tailLines": "1"}


def test_logs_of_a_pending_run_say_why(cluster: TeamCluster, api: Any) -> None:
    # GIVEN a sweep sent to a pool no node belongs to, which the real scheduler has found no node for
    submit(
        api, experiment(2, resources={"cpu": "1", "memory": "1Gi"}, nodes={"pool": "no-such-pool"}), owner="alice"
    )

    def unschedulable() -> bool:
        pods = cluster.pods("bert-sweep")
        return len(pods) == 2 and all(
            any(c["type"] == "PodScheduled" and c["status"] == "False" for c in p["status"].get("conditions", []))
            for p in pods
        )

    cluster.wait("both pods unschedulable", unschedulable)

    # THEN logs says why the run has not started, in the scheduler's terms, and asks for no log
    with pytest.raises(
        UnknownExperimentError,
        match=r"run 0 of 'bert-sweep' has not started: .*3/9 nodes don't match herd\.dev/pool=no-such-pool",
    ):
        list(run_logs(api, "bert-sweep", "0"))
    assert not cluster.requests("GET", "/log")
    with pytest.raises(UnknownExperimentError, match=r"has runs 0..1, not 7"):
        list(run_logs(api, "bert-sweep", "7"))
    with pytest.raises(UnknownExperimentError, match=r"give a run index \(3\) or a run name"):
        list(run_logs(api, "bert-sweep", "three"))


# ------------------------------------------------------------------------------------------------ cancel
def test_cancel_records_then_deletes_and_explains_what_happens_to_pods(cluster: TeamCluster, api: Any) -> None:
    # GIVEN 5 runs, 2 at a time, each running 6 s: once the first two have succeeded, the next two are running
    # and the last has no pod yet (the Job's parallelism)
    submit(api, experiment(5, parallelism=2, env={"HERD_SIMULATED_DURATION": "6s"}), owner="alice")

    def second_wave() -> bool:
        return len(_pods_of(cluster, "Succeeded")) == 2 and len(_pods_of(cluster, "Running")) == 2

    cluster.wait("two runs succeeded and two running", second_wave)
    cluster.reset_log()

    # WHEN alice cancels the sweep
    result = cancel(api, "bert-sweep")

    # THEN the state of every run is recorded first, then the Job is deleted for the garbage collector
    ns = cluster.namespace
    assert [(r.method, r.path) for r in cluster.log] == [
        ("GET", f"/api/v1/namespaces/{ns}/configmaps/bert-sweep.registry"),
        ("GET", f"/apis/batch/v1/namespaces/{ns}/jobs/bert-sweep"),
        ("GET", f"/api/v1/namespaces/{ns}/pods"),
        ("PATCH", f"/api/v1/namespaces/{ns}/configmaps/bert-sweep.registry"),
        ("DELETE", f"/apis/batch/v1/namespaces/{ns}/jobs/bert-sweep"),
    ]
    assert cluster.log[-1].body["propagationPolicy"] == "Background"
    assert (result.running, result.waiting, result.finished, result.grace_seconds) == (2, 1, 2, 30)
    text = result.explain()
    assert "2 running run(s) get SIGTERM and 30s to stop before SIGKILL" in text
    assert "1 run(s) that had not started never will" in text
    # The real garbage collector removes the pods (KWOK stops them) and the sweep ConfigMap; the registry stays.
    cluster.wait("the pods collected", lambda: not cluster.pods("bert-sweep"))
    cluster.wait("the sweep ConfigMap collected", lambda: cluster.get("configmaps", "bert-sweep-sweep") is None)
    assert cluster.get("configmaps", "bert-sweep.registry") is not None
    record = registry.read(api, "bert-sweep")
    assert record is not None
    rev = record.latest()
    assert rev is not None and (rev.state, rev.outcome) == ("cancelled", "cancelled")
    assert rev.counts == {"succeeded": 2, "cancelled": 3}
    summary = list_experiments(api)
    assert [(s.experiment, s.state, s.counts) for s in summary] == [
        ("bert-sweep", "cancelled", {"succeeded": 2, "cancelled": 3})
    ]
    # Cancelling again: nothing left to delete, said so.
    assert not cancel(api, "bert-sweep").deleted


# ------------------------------------------------------------------------------------------------ ls
def test_ls_counts_runs_by_state_for_every_experiment_in_three_requests(cluster: TeamCluster, api: Any) -> None:
    # GIVEN two experiments whose pods exist and wait for a node (their pool has none)
    nowhere = {"resources": {"cpu": "1", "memory": "1Gi"}, "nodes": {"pool": "no-such-pool"}}
    submit(api, experiment(3, **nowhere), owner="alice")
    submit(api, experiment(4, name="gpt-sweep", **nowhere), owner="bob")
    cluster.wait("7 pods", lambda: len(cluster.pods("bert-sweep")) + len(cluster.pods("gpt-sweep")) == 7)
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


# ------------------------------------------------------------------------------------------------ results
def test_results_from_the_mounted_volume_ranked_csv_plot_and_recorded(
    cluster: TeamCluster, api: Any, tmp_path: Path
) -> None:
    # GIVEN a finished sweep, its runs' files on the results volume, mounted here
    exp, volume = _finished_sweep(cluster, api, 6)
    cluster.reset_log()

    found = read_results(api, "bert-sweep", results_path=str(volume))

    # THEN no pod: the run states from the Job and its pods, the end recorded, the metrics read and recorded
    ns = cluster.namespace
    assert [(r.method, r.path) for r in cluster.log] == [
        ("GET", f"/api/v1/namespaces/{ns}/configmaps/bert-sweep.registry"),
        ("GET", f"/apis/batch/v1/namespaces/{ns}/jobs/bert-sweep"),
        ("GET", f"/api/v1/namespaces/{ns}/pods"),
        ("PATCH", f"/api/v1/namespaces/{ns}/configmaps/bert-sweep.registry"),  # the sweep ended: recorded
        ("GET", f"/api/v1/namespaces/{ns}/configmaps/bert-sweep.registry"),
        ("PATCH", f"/api/v1/namespaces/{ns}/configmaps/bert-sweep.registry"),  # final metrics recorded
    ]
    assert found.source == f"mounted {volume / 'bert-sweep'}"
    ranked = found.ranked()
    assert [r.index for r in ranked] == [5, 4, 3, 2, 1, 0]
    assert ranked[0].metrics == {"accuracy": 0.55, "loss": 0.5}
    assert ranked[0].params == exp.sweep.params(5)
    assert found.states == dict.fromkeys(range(6), "succeeded")

    rows = list(csv.DictReader(io.StringIO(to_csv(found))))
    assert rows[0]["rank"] == "1" and rows[0]["run"] == "run-00005" and rows[0]["state"] == "succeeded"
    assert float(rows[0]["accuracy"]) == 0.55 and set(rows[0]) >= {"lr", "batch", "loss"}
    png = plot(found, tmp_path / "sweep.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    rows_recorded = registry.read(api, "bert-sweep").runs(1)  # type: ignore[union-attr]
    assert rows_recorded[5]["metrics"] == {"accuracy": 0.55, "loss": 0.5}
    assert {r["node"] for r in rows_recorded} <= {"gpu-01", "gpu-02"}


def test_results_from_a_mounted_volume_work_after_the_ttl_removed_the_job(cluster: TeamCluster, api: Any) -> None:
    # GIVEN a finished sweep nobody looked at, whose Job the real TTL controller removed (its TTL shortened
    # here: the spec's smallest is a minute)
    _, volume = _finished_sweep(cluster, api, 4)
    cluster.patch("jobs", "bert-sweep", {"spec": {"ttlSecondsAfterFinished": 1}})
    cluster.wait("the Job gone", lambda: cluster.get("jobs", "bert-sweep") is None)
    cluster.reset_log()

    found = read_results(api, "bert-sweep", results_path=str(volume))

    # THEN the registry, the Job (404: gone before anyone recorded its end, which is now recorded), and the
    # metrics read from the mounted volume recorded too
    assert [(r.method, r.path.rsplit("/", 1)[-1], r.status) for r in cluster.log] == [
        ("GET", "bert-sweep.registry", 200),
        ("GET", "bert-sweep", 404),
        ("PATCH", "bert-sweep.registry", 200),
        ("GET", "bert-sweep.registry", 200),
        ("PATCH", "bert-sweep.registry", 200),
    ]
    assert [r.index for r in found.ranked()] == [3, 2, 1, 0]
    assert found.states == {}  # nobody saw the runs end; their metrics are on the volume all the same
    record = registry.read(api, "bert-sweep")
    assert record is not None and record.latest().state == "gone"  # type: ignore[union-attr]
    assert record.runs(1)[3]["metrics"] == {"accuracy": 0.53, "loss": 0.7}
    with pytest.raises(ResultsError, match="no such directory"):
        read_results(api, "bert-sweep", results_path=str(volume / "elsewhere"))


def test_status_with_the_volume_mounted_shows_and_records_final_metrics(cluster: TeamCluster, api: Any) -> None:
    from ml_jobs.kube import sweep_status

    _, volume = _finished_sweep(cluster, api, 3)
    cluster.reset_log()

    status = sweep_status(api, "bert-sweep", results_path=str(volume))

    assert [r.metrics for r in status.runs] == [metrics_of(0), metrics_of(1), metrics_of(2)]
    assert status.recorded and [r.method for r in cluster.log] == ["GET", "GET", "GET", "PATCH"]
    rows = registry.read(api, "bert-sweep").runs(1)  # type: ignore[union-attr]
    assert [row["metrics"]["accuracy"] for row in rows] == [0.5, 0.51, 0.52]


def test_the_reader_pod_is_admitted_for_alice_scheduled_with_the_claim_and_deleted(
    cluster: TeamCluster, api: Any
) -> None:
    # GIVEN a finished sweep and no results volume mounted here
    submit(api, experiment(2), owner="alice")
    cluster.wait_job("bert-sweep", "Complete")
    cluster.reset_log()

    # WHEN results starts the reader pod: the real API server admits it as alice (RBAC, Pod Security, the
    # LimitRange, the quota) and the real scheduler places it with its claim; KWOK's node starts it but runs
    # nothing, so it never ends (its output is tested on a real node) and results gives up after its timeout
    placed: list[str] = []

    def poll(_seconds: float) -> None:  # instead of waiting a second: until the reader pod runs on a node
        if not placed:
            reader = cluster.wait(
                "the reader pod running", lambda: _pods_of_component(cluster, "reader", "Running")
            )
            placed.append(reader[0]["spec"]["nodeName"])

    with pytest.raises(ResultsError, match=r"reader pod bert-sweep-results-\w{6} did not finish within 4s"):
        read_results(api, "bert-sweep", timeout=4, sleep=poll)

    # THEN it was created once as the results module made it, running on a node, and deleted again
    ns = cluster.namespace
    posted = cluster.requests("POST", f"/api/v1/namespaces/{ns}/pods")
    assert len(posted) == 1 and posted[0].status == 201
    body = posted[0].body
    assert body["spec"]["volumes"] == [
        {"name": "results", "persistentVolumeClaim": {"claimName": "herd-results", "readOnly": True}}
    ]
    # the experiment's own image (no other image pulled), its python running the reader's script
    assert body["spec"]["containers"][0]["image"] == experiment(2).image
    assert body["spec"]["containers"][0]["command"] == reader_command("python3")
    assert body["spec"]["activeDeadlineSeconds"] == 300
    name = body["metadata"]["name"]
    assert placed, "the reader pod was never running on a node"
    deleted = cluster.requests("DELETE", f"/api/v1/namespaces/{ns}/pods/{name}")
    assert [r.status for r in deleted] == [200]
    cluster.wait("the reader pod gone", lambda: cluster.get("pods", name) is None)
    assert all(r.status < 400 for r in cluster.log)


def test_a_reader_the_quota_refuses_is_said_at_once_in_the_servers_words(cluster: TeamCluster, api: Any) -> None:
    # GIVEN a finished sweep, and the team's quota allowing no more pods
    submit(api, experiment(2), owner="alice")
    cluster.wait_job("bert-sweep", "Complete")
    cluster.patch("resourcequotas", "herd-team-quota", {"spec": {"hard": {"pods": "0"}}})
    cluster.wait(
        "the quota counting pods",
        lambda: (
            "pods" in (cluster.get("resourcequotas", "herd-team-quota") or {}).get("status", {}).get("hard", {})
        ),
    )
    cluster.reset_log()
    # WHEN results starts the reader pod THEN the real API server's refusal is the one line, with no wait
    slept: list[float] = []
    with pytest.raises(ResultsError) as caught:
        read_results(api, "bert-sweep", timeout=60, sleep=slept.append)
    assert re.fullmatch(
        r'reader pod (bert-sweep-results-\w{6}) refused: pods "\1" is forbidden: exceeded quota: herd-team-quota, '
        r"requested: pods=1, used: pods=\d+, limited: pods=0",
        str(caught.value),
    ), caught.value
    assert slept == [] and [r.status for r in cluster.requests("POST", "/pods")] == [403]


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


# ------------------------------------------------------------------------------------------------ the objects
def _backend_objects(cluster: TeamCluster, api: Any) -> list[dict[str, Any]]:
    """Every object kind ml-jobs creates, as it sends them: the registry entry, the sweep ConfigMap (with the
    owner reference submit gives it), the Job, and the reader pod."""
    submit(api, experiment(3), owner="alice")
    registry_cm = next(
        r.body for r in cluster.log if r.method == "POST" and r.body["metadata"]["name"].endswith(".registry")
    )
    rendered = render(experiment(3), namespace=cluster.namespace, owner="alice", revision=1)
    owner_refs = next(r.body for r in cluster.log if r.method == "PATCH" and r.path.endswith("/bert-sweep-sweep"))[
        "metadata"
    ]["ownerReferences"]
    sweep_cm = json.loads(json.dumps(rendered.config_map))
    sweep_cm["metadata"]["ownerReferences"] = owner_refs
    return [
        registry_cm,
        sweep_cm,
        rendered.job,
        reader_pod("bert-sweep", "herd-results", "bert-sweep", image=experiment(3).image),
    ]


def _dry_run_as_alice(cluster: TeamCluster, obj: dict[str, Any]) -> tuple[int, dict[str, Any], list[str]]:
    """Create ``obj`` in the test's namespace with server-side dry-run and strict field validation, as alice with
    her client certificate: the real server's defaulting, validation and admission, nothing stored."""
    pki = cluster.local.directory / "pki"
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "alice.crt"), str(pki / "alice.key"))
    group = "/apis/batch/v1" if obj["kind"] == "Job" else "/api/v1"
    plural = {"ConfigMap": "configmaps", "Job": "jobs", "Pod": "pods"}[obj["kind"]]
    body = {**obj, "metadata": {**obj["metadata"], "name": obj["metadata"]["name"] + "-dry"}}
    url = (
        f"{cluster.local.server}{group}/namespaces/{cluster.namespace}/{plural}?dryRun=All&fieldValidation=Strict"
    )
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=30) as answer:
            return answer.status, json.loads(answer.read()), answer.headers.get_all("Warning") or []
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}"), e.headers.get_all("Warning") or []


def test_objects_the_backend_creates_pass_the_real_api_server(cluster: TeamCluster, api: Any) -> None:
    # GIVEN what ml-jobs sends: submit's objects (which the real server has just created, as alice) and the
    # reader pod — WHEN each is created again with server-side dry-run and strict field validation as alice
    for obj in _backend_objects(cluster, api):
        status, answer, warnings = _dry_run_as_alice(cluster, obj)
        # THEN the real server's validation, defaulting and admission accept it, with no unknown field and no
        # warning (the reader pod meets the restricted Pod Security Standard the team namespaces warn on)
        assert status == 201, (obj["kind"], answer.get("message"))
        assert answer["kind"] == obj["kind"] and answer["metadata"]["namespace"] == cluster.namespace
        if obj["kind"] == "Pod":
            assert warnings == [], warnings
            assert answer["spec"]["containers"][0]["resources"]["limits"] == {"cpu": "200m", "memory": "64Mi"}
        if obj["kind"] == "ConfigMap" and obj["metadata"].get("ownerReferences"):
            assert answer["metadata"]["ownerReferences"] == obj["metadata"]["ownerReferences"]
    # AND nothing was stored by the dry runs
    assert not [c for c in cluster.all("configmaps") if c["metadata"]["name"].endswith("-dry")]
    assert cluster.get("jobs", "bert-sweep-dry") is None


@pytest.mark.parametrize("version", ["1.35", "1.37"])
def test_objects_the_backend_creates_pass_the_api_schema_of_the_other_supported_minors(
    cluster: TeamCluster, api: Any, version: str
) -> None:
    import kubernetes_validate

    # The real server is the default minor; the other supported minors by their published schemas.
    for obj in _backend_objects(cluster, api):
        kubernetes_validate.validate(obj, version, strict=True)


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
