"""submit against the real API server (as alice, through the fault proxy): every request asserted, idempotence,
revisions, retries after injected faults, rollback."""

from __future__ import annotations

from typing import Any

import pytest

from ml_jobs import _labels as L
from ml_jobs.errors import (
    ConflictError,
    ExperimentExistsError,
    ForbiddenError,
    InvalidError,
    ServerError,
    UnreachableError,
)
from ml_jobs.kube import _submit as submit_module
from ml_jobs.kube import registry, submit
from ml_jobs.render import render
from tests.docs import SUBMIT
from tests.ml_jobs.cluster.conftest import TeamCluster, experiment

pytestmark = pytest.mark.real_cluster


def cm_path(cluster: TeamCluster) -> str:
    return f"/api/v1/namespaces/{cluster.namespace}/configmaps"


def jobs_path(cluster: TeamCluster) -> str:
    return f"/apis/batch/v1/namespaces/{cluster.namespace}/jobs"


def queues_path(cluster: TeamCluster) -> str:
    return f"/apis/kueue.x-k8s.io/v1beta2/namespaces/{cluster.namespace}/localqueues"


def calls(cluster: TeamCluster) -> list[tuple[str, str]]:
    return [(r.method, r.path) for r in cluster.log]


def names(cluster: TeamCluster, plural: str) -> list[str]:
    """What is in the namespace, less what a real cluster puts in every namespace (the controller manager's root
    CA publisher writes ``kube-root-ca.crt``)."""
    found = (o["metadata"]["name"] for o in cluster.all(plural))
    return sorted(name for name in found if name != "kube-root-ca.crt")


def test_submit_creates_registry_configmap_and_job_in_that_order(cluster: TeamCluster, api: Any) -> None:
    CM, JOBS = cm_path(cluster), jobs_path(cluster)
    exp = experiment(6)
    result = submit(api, exp, owner="alice")

    assert result.created and result.revision == 1 and result.job == "bert-sweep" and result.runs == 6
    assert calls(cluster) == [
        ("GET", f"{CM}/bert-sweep.registry"),
        ("GET", queues_path(cluster)),  # the team queue, if Kueue runs (none in this namespace)
        ("POST", CM),  # the registry entry: the intent, first
        ("POST", CM),  # the sweep ConfigMap
        ("POST", JOBS),  # the Job, last: nothing runs before everything it needs exists
        ("PATCH", f"{CM}/bert-sweep-sweep"),  # the ConfigMap becomes the Job's dependent
        ("PATCH", f"{CM}/bert-sweep.registry"),  # submitting -> submitted
    ]
    # Bodies: exactly the renderer's objects, stamped with this submission.
    expected = render(exp, namespace=cluster.namespace, owner="alice", revision=1)
    sent_cm, sent_job = cluster.log[3].body, cluster.log[4].body
    submission = sent_job["metadata"]["annotations"][L.SUBMISSION]
    for sent, want in ((sent_cm, expected.config_map), (sent_job, expected.job)):
        assert sent["metadata"]["annotations"].pop(L.SUBMISSION) == submission
        assert sent == want
    job = cluster.get("jobs", "bert-sweep")
    assert job is not None
    assert cluster.log[5].body == {
        "metadata": {
            "ownerReferences": [
                {"apiVersion": "batch/v1", "kind": "Job", "name": "bert-sweep", "uid": job["metadata"]["uid"]}
            ]
        }
    }

    record = registry.read(api, "bert-sweep")
    assert record is not None
    rev = record.latest()
    assert rev is not None
    assert (rev.revision, rev.state, rev.runs, rev.job_uid) == (1, "submitted", 6, job["metadata"]["uid"])
    assert rev.objective == {"metric": "accuracy", "goal": "max"} and rev.params == ["lr", "batch"]
    assert record.spec(1) == exp.to_dict()
    # Nothing per run at submit (its cost does not grow with the runs): each run's parameters come from the spec.
    assert record.runs(1) == [] and registry.runs_key(1) not in record.binary
    assert [record.params_of(1)(i) for i in range(6)] == [exp.sweep.params(i) for i in range(6)]
    labels = cluster.get("configmaps", "bert-sweep.registry")["metadata"]["labels"]
    assert labels == {
        L.EXPERIMENT: "bert-sweep",
        L.COMPONENT: "registry",
        L.MANAGED_BY: "ml-jobs",
        L.STATE: "submitted",
    }
    # The registry is not owned by the Job (it must outlive the Job's TTL).
    assert not cluster.get("configmaps", "bert-sweep.registry")["metadata"].get("ownerReferences")


def test_same_spec_twice_is_one_sweep_and_says_so(cluster: TeamCluster, api: Any) -> None:
    CM = cm_path(cluster)
    exp = experiment(6)
    submit(api, exp, owner="alice")
    cluster.reset_log()

    again = submit(api, experiment(6), owner="bob")

    assert not again.created
    assert "already submitted with this spec" in again.message and "nothing created" in again.message
    assert calls(cluster) == [("GET", f"{CM}/bert-sweep.registry")]
    assert names(cluster, "jobs") == ["bert-sweep"]


def test_changed_spec_is_refused_unless_a_new_revision_is_asked_for(cluster: TeamCluster, api: Any) -> None:
    CM = cm_path(cluster)
    submit(api, experiment(6), owner="alice")
    changed = experiment(8)
    cluster.reset_log()

    with pytest.raises(ExperimentExistsError, match=r"different spec .*--new-revision to run it as revision 2"):
        submit(api, changed, owner="alice")
    assert calls(cluster) == [("GET", f"{CM}/bert-sweep.registry")]

    result = submit(api, changed, owner="alice", new_revision=True)
    assert (result.revision, result.job, result.runs) == (2, "bert-sweep-r2", 8)
    assert names(cluster, "jobs") == ["bert-sweep", "bert-sweep-r2"]
    record = registry.read(api, "bert-sweep")
    assert record is not None
    assert [(r.revision, r.state, r.runs) for r in record.revisions] == [(1, "submitted", 6), (2, "submitted", 8)]
    # The same changed spec again is revision 2 again, and the first spec is still revision 1: nothing new.
    assert not submit(api, changed, owner="alice").created
    first = submit(api, experiment(6), owner="alice")
    assert not first.created and first.revision == 1 and "revision 1 (Job bert-sweep)" in first.message


def test_a_5xx_after_the_server_committed_the_job_is_retried_without_a_duplicate(
    cluster: TeamCluster, api: Any
) -> None:
    JOBS = jobs_path(cluster)
    # The API server stored the Job, then the answer was lost (500): the retry meets 409 and finds its own Job.
    fault = cluster.inject("POST", "/jobs$", 500, after_commit=True)

    result = submit(api, experiment(6), owner="alice")

    assert fault.hits == 1 and result.created
    posts = [r for r in cluster.requests("POST") if r.path == JOBS]
    assert len(posts) == 2  # first try (answer lost) + the retry that met 409
    assert ("GET", f"{JOBS}/bert-sweep") in calls(cluster)
    assert names(cluster, "jobs") == ["bert-sweep"]
    assert result.objects == ["configmaps/bert-sweep-sweep", "jobs/bert-sweep"]


@pytest.mark.parametrize("after_commit", [False, True], ids=["lost-request", "lost-answer"])
def test_a_timeout_mid_submit_is_retried_without_a_duplicate(cluster: TeamCluster, after_commit: bool) -> None:
    cluster.proxy.timeout_sleep = 1.0
    api = cluster.api(timeout=0.3)
    cluster.inject("POST", "/configmaps$", None, after_commit=after_commit)  # the registry create times out

    result = submit(api, experiment(6), owner="alice")

    assert result.created
    assert names(cluster, "configmaps") == ["bert-sweep-sweep", "bert-sweep.registry"]
    assert names(cluster, "jobs") == ["bert-sweep"]
    api.close()


def _assert_nothing_left(cluster: TeamCluster) -> None:
    assert names(cluster, "jobs") == []
    assert names(cluster, "configmaps") == []


def test_a_persistent_5xx_rolls_back_everything_this_call_made(cluster: TeamCluster, api: Any) -> None:
    CM, JOBS = cm_path(cluster), jobs_path(cluster)
    cluster.inject("POST", "/jobs$", 503, times=10, message="etcdserver: leader changed")

    with pytest.raises(ServerError, match=r"failed to create job 'bert-sweep'.*503 etcdserver: leader changed"):
        submit(api, experiment(6), owner="alice")

    _assert_nothing_left(cluster)
    assert calls(cluster)[-4:] == [
        ("GET", f"{JOBS}/bert-sweep"),  # the failed create: did it happen after all? (no)
        ("DELETE", f"{CM}/bert-sweep-sweep"),
        ("GET", f"{CM}/bert-sweep.registry"),  # our entry is the only one: the registry was ours
        ("DELETE", f"{CM}/bert-sweep.registry"),
    ]


def test_a_namespace_without_the_role_is_refused_by_the_real_authorizer_in_one_line(cluster: TeamCluster) -> None:
    # GIVEN alice, who holds the herd-submitter Role in her team's namespaces only, and the nlp team's namespace
    from ml_jobs.kube import Api

    api = Api(cluster.configuration(), "nlp", timeout=10, attempts=1)
    # WHEN she submits there THEN the real RBAC authorizer refuses the first request, and nothing is created
    with pytest.raises(ForbiddenError) as info:
        submit(api, experiment(2), owner="alice")
    message = str(info.value)
    assert message.startswith("forbidden: you may not get configmaps in namespace 'nlp'"), message
    assert 'User "alice" cannot get resource "configmaps" in API group "" in the namespace "nlp"' in message
    assert "\n" not in message
    assert [(r.method, r.status) for r in cluster.log if "/selfsubjectreviews" not in r.path] == [("GET", 403)]
    assert cluster.admin.request("GET", "/apis/batch/v1/namespaces/nlp/jobs")["items"] == []
    api.close()


def test_a_forbidden_job_create_midway_rolls_back(cluster: TeamCluster, api: Any) -> None:
    # An admission webhook or a changed Role refusing the Job after the ConfigMaps were made: the server's words.
    cluster.inject(
        "POST",
        "/jobs$",
        403,
        message=f'jobs.batch is forbidden: User "alice" cannot create resource "jobs" in API group "batch" in the '
        f'namespace "{cluster.namespace}"',
    )

    with pytest.raises(ForbiddenError) as info:
        submit(api, experiment(6), owner="alice")

    message = str(info.value)
    assert message.startswith(f"forbidden: you may not create jobs in namespace '{cluster.namespace}'")
    assert "\n" not in message
    assert (info.value.verb, info.value.resource, info.value.namespace) == ("create", "jobs", cluster.namespace)
    assert len(cluster.requests("POST", "/jobs")) == 1  # 403 is not retried
    _assert_nothing_left(cluster)


def test_invalid_carries_the_servers_message(cluster: TeamCluster, api: Any) -> None:
    cluster.inject(
        "POST",
        "/jobs$",
        422,
        message='Job.batch "bert-sweep" is invalid: spec.backoffLimitPerIndex: Forbidden: requires indexed mode',
    )

    with pytest.raises(InvalidError, match=r"spec.backoffLimitPerIndex: Forbidden: requires indexed mode"):
        submit(api, experiment(6), owner="alice")
    _assert_nothing_left(cluster)


def test_a_job_of_that_name_from_elsewhere_is_a_conflict_not_adopted(cluster: TeamCluster, api: Any) -> None:
    foreign = render(experiment(3), namespace=cluster.namespace, owner="eve").job
    foreign["metadata"]["labels"][L.SPEC_HASH] = "0123456789ab"
    cluster.create("jobs", foreign)

    with pytest.raises(ConflictError, match=r"job 'bert-sweep' already exists .* was not made from this spec"):
        submit(api, experiment(6), owner="alice")

    assert names(cluster, "jobs") == ["bert-sweep"]  # the foreign Job is untouched
    assert names(cluster, "configmaps") == []


def test_ctrl_c_during_submit_leaves_nothing_half_made(
    cluster: TeamCluster, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    CM, JOBS = cm_path(cluster), jobs_path(cluster)
    # Ctrl-C arrives after the Job was created, while the ConfigMap is being made its dependent.
    real_patch = api.patch

    def interrupted(resource: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        if resource == "configmaps" and "ownerReferences" in patch.get("metadata", {}):
            raise KeyboardInterrupt
        return real_patch(resource, name, patch)

    monkeypatch.setattr(api, "patch", interrupted)

    with pytest.raises(KeyboardInterrupt):
        submit(api, experiment(6), owner="alice")

    _assert_nothing_left(cluster)
    assert calls(cluster)[-4:] == [
        ("DELETE", f"{JOBS}/bert-sweep"),
        ("DELETE", f"{CM}/bert-sweep-sweep"),
        ("GET", f"{CM}/bert-sweep.registry"),
        ("DELETE", f"{CM}/bert-sweep.registry"),
    ]
    delete_job = cluster.requests("DELETE", "/jobs/")[0]
    assert delete_job.body["propagationPolicy"] == "Background"


def test_rollback_of_a_new_revision_keeps_the_earlier_ones(cluster: TeamCluster, api: Any) -> None:
    submit(api, experiment(6), owner="alice")
    cluster.inject("POST", "/jobs$", 403)

    with pytest.raises(ForbiddenError):
        submit(api, experiment(8), owner="alice", new_revision=True)

    record = registry.read(api, "bert-sweep")
    assert record is not None
    assert [r.revision for r in record.revisions] == [1]
    assert "spec-r2.json" not in record.data and "runs-r2.json.gz" not in record.binary
    assert names(cluster, "jobs") == ["bert-sweep"]


def test_a_submit_killed_outright_is_resumed_by_the_next_identical_submit(
    cluster: TeamCluster, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    CM, JOBS = cm_path(cluster), jobs_path(cluster)
    # GIVEN a submit that died (kill -9: no rollback) after its ConfigMap, before its Job
    monkeypatch.setattr(submit_module, "_rollback", lambda *a, **k: None)
    cluster.inject("POST", "/jobs$", 403)
    with pytest.raises(ForbiddenError):
        submit(api, experiment(6), owner="alice")
    monkeypatch.undo()
    record = registry.read(api, "bert-sweep")
    assert record is not None and record.latest().state == "submitting"  # type: ignore[union-attr]
    assert names(cluster, "configmaps") == ["bert-sweep-sweep", "bert-sweep.registry"]
    cluster.reset_log()

    # WHEN the same spec is submitted again
    result = submit(api, experiment(6), owner="alice")

    # THEN it adopts the ConfigMap, creates the Job, and the registry says submitted
    assert result.created and result.resumed and result.revision == 1
    assert calls(cluster) == [
        ("GET", f"{CM}/bert-sweep.registry"),
        ("GET", queues_path(cluster)),
        ("POST", CM),  # 409: the ConfigMap exists ...
        ("GET", f"{CM}/bert-sweep-sweep"),  # ... made by the interrupted submit of this spec: adopted
        ("POST", JOBS),
        ("PATCH", f"{CM}/bert-sweep-sweep"),
        ("PATCH", f"{CM}/bert-sweep.registry"),
    ]
    assert registry.read(api, "bert-sweep").latest().state == "submitted"  # type: ignore[union-attr]


def test_registry_updates_are_guarded_by_resource_version(cluster: TeamCluster, api: Any) -> None:
    submit(api, experiment(6), owner="alice")
    stale = registry.read(api, "bert-sweep")
    assert stale is not None
    cluster.patch("configmaps", "bert-sweep.registry", {"metadata": {"annotations": {"touched": "by-someone"}}})

    with pytest.raises(ConflictError, match="the object has been modified"):
        registry.update(api, stale, stale.revisions)


def test_an_unreachable_api_server_is_one_line_after_retries(cluster: TeamCluster) -> None:
    from ml_jobs.kube import Api

    cfg = cluster.configuration()
    cfg.host = "http://127.0.0.1:9"  # discard port: nothing listens
    api = Api(cfg, cluster.namespace, timeout=0.5, attempts=2, sleep=lambda s: None)

    with pytest.raises(
        UnreachableError, match=r"API server http://127.0.0.1:9: cannot connect .*after 2 attempts"
    ):
        submit(api, experiment(6), owner="alice")


def test_a_409_from_a_concurrent_writer_rolls_back_and_says_so(cluster: TeamCluster, api: Any) -> None:
    # Another client changed the registry between our read and our final update.
    cluster.inject(
        "PATCH",
        r"/configmaps/bert-sweep\.registry$",
        409,
        message='Operation cannot be fulfilled on configmaps "bert-sweep.registry": the object has been modified',
    )

    with pytest.raises(ConflictError, match="the object has been modified"):
        submit(api, experiment(6), owner="alice")

    _assert_nothing_left(cluster)


def test_ctrl_c_is_held_off_while_rolling_back_and_raised_after() -> None:
    import os
    import signal

    reached_end = False
    with pytest.raises(KeyboardInterrupt), submit_module._ctrl_c_deferred():
        os.kill(os.getpid(), signal.SIGINT)  # a real SIGINT, delivered to this (main) thread
        reached_end = True  # the rollback would go on here
    assert reached_end
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.slow
def test_a_real_ctrl_c_while_the_job_create_is_in_flight_leaves_nothing(
    cluster: TeamCluster, tmp_path: Any
) -> None:
    """SIGINT to `ml-jobs submit` after the server stored the Job but before it answered: the Job is found by
    its submission id and removed with the rest."""
    import os
    import signal
    import subprocess
    import sys
    import time

    spec = tmp_path / "spec.yaml"
    import yaml

    spec.write_text(yaml.safe_dump(experiment(3).to_dict()), encoding="utf-8")
    cluster.proxy.timeout_sleep = 20.0
    cluster.inject("POST", "/jobs$", None, after_commit=True)  # stored, then no answer
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig(tmp_path / "config")), "USER": "alice"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from ml_jobs.cli import main; main()", "submit", str(spec)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not cluster.requests("POST", "/jobs") and time.monotonic() < deadline:
        time.sleep(0.05)
    # the server has it (once its admission webhooks, Kueue's among them, have answered); the client still waits
    cluster.wait("the server storing the Job", lambda: cluster.get("jobs", "bert-sweep"), timeout=10)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)

    assert proc.returncode != 0, out
    _assert_nothing_left(cluster)


def test_429_waits_as_long_as_the_server_asks(cluster: TeamCluster) -> None:
    from ml_jobs.kube import Api

    waits: list[float] = []
    api = Api(cluster.configuration(), cluster.namespace, timeout=5, attempts=3, backoff=0.1, sleep=waits.append)
    cluster.inject("GET", r"\.registry$", 429, retry_after=7)

    submit(api, experiment(2), owner="alice")

    assert waits == [7.0]
    api.close()


def test_the_owner_is_the_user_the_api_server_sees_not_the_login_name(
    cluster: TeamCluster, api: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a local login "bob" and an API server that authenticates the client (certificate CN) as alice
    # WHEN submitting without an explicit owner THEN the owner is the server's user
    monkeypatch.setattr("getpass.getuser", lambda: "bob")
    result = submit(api, experiment(2))
    assert ("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews") in calls(cluster)
    job = cluster.get("jobs", result.job)
    assert job is not None
    assert job["metadata"]["labels"][L.OWNER] == "alice"
    assert job["spec"]["template"]["metadata"]["labels"][L.OWNER] == "alice"
    assert registry.read(api, "bert-sweep").latest().submitted_by == "alice"  # type: ignore[union-attr]


def test_an_owner_name_is_sanitised_for_the_label() -> None:
    # An OIDC user name is no label value: the label gets a sanitised form, the registry keeps the name.
    assert L.label_value("oidc:alice@example.com") == "oidc-alice-example.com"


@pytest.mark.parametrize("status", [404, 403])
def test_the_owner_falls_back_to_the_login_name_when_the_server_cannot_say(
    cluster: TeamCluster, api: Any, monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    # GIVEN a server before Kubernetes 1.28 (no SelfSubjectReview: 404) or one whose policy forbids it (403)
    # WHEN submitting THEN the login name is the owner and the submit goes through
    monkeypatch.setattr("getpass.getuser", lambda: "bob")
    cluster.inject("POST", "/selfsubjectreviews$", status, message="no reviews here")
    result = submit(api, experiment(2))
    assert result.created
    assert cluster.get("jobs", result.job)["metadata"]["labels"][L.OWNER] == "bob"


def test_who_submits_is_asked_only_when_something_will_be_created(cluster: TeamCluster, api: Any) -> None:
    CM = cm_path(cluster)
    # GIVEN a submitted sweep WHEN the same spec is submitted again (no owner given) THEN one GET, no review
    submit(api, experiment(2))
    assert ("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews") in calls(cluster)
    cluster.reset_log()
    again = submit(api, experiment(2))
    assert not again.created
    assert calls(cluster) == [("GET", f"{CM}/bert-sweep.registry")]
    # AND a changed spec refused for its taken name asks nothing either
    cluster.reset_log()
    with pytest.raises(ExperimentExistsError):
        submit(api, experiment(3))
    assert calls(cluster) == [("GET", f"{CM}/bert-sweep.registry")]


def test_the_cluster_doc_says_how_many_requests_a_submit_sends(cluster: TeamCluster, api: Any) -> None:
    # The cluster doc's section on submit states the count; the real server's log of a first submit holds it to it.
    import re

    found = re.search(r"API requests:\*\* (\d+)\s+\(one a SelfSubjectReview", SUBMIT.text())
    assert found, f"{SUBMIT.doc}: no request count under {SUBMIT.heading}"
    stated = int(found.group(1))
    submit(api, experiment(3))
    assert len(cluster.log) == stated, cluster.log
    again = len(cluster.log)
    submit(api, experiment(3))
    assert len(cluster.log) - again == 1  # "1 when the same spec was submitted already"
