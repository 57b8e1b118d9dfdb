"""The ``herd-submitter`` Role (``ml_jobs.rbac``) against what ``ml-jobs`` really sends, judged by the real API
server's RBAC authorizer.

An engineer's whole day runs through the real CLI (in-process) as alice — a member of the vision team's submitter
group, holding the Role in her team's namespace and nothing else — against the real control plane, through the
fault proxy, which logs every request. The real authorizer must allow every one of them (no 403). Each request is
also mapped to the attributes the authorizer checks — (API group, resource[/subresource], verb, namespace), derived
from method, path and query the way the server's ``RequestInfoFactory`` derives them — so that every verb the
Role grants is shown to be used by some request: a permission nobody needs fails here too.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from ml_jobs import layout, queueing, rbac
from ml_jobs.cli import app
from ml_jobs.kube import results as results_module
from tests.docs import PERMISSIONS
from tests.ml_jobs.cluster.conftest import GPU_PRODUCT, TeamCluster, experiment
from tests.ml_jobs.cluster.faults import Logged
from tests.ml_jobs.cluster.stand_ins import results_volume, write_run_results

_INDEX = "batch.kubernetes.io/job-completion-index"


@dataclass(frozen=True)
class Attributes:
    """What RBAC decides on for one resource request."""

    api_group: str
    resource: str  # "pods" or "pods/log"
    verb: str
    namespace: str | None  # None: cluster-scoped


# Cluster-scoped requests no Role can grant: the rules of the default ``system:basic-user`` ClusterRole, which
# Kubernetes' bootstrap policy binds to every authenticated user (``system:authenticated``). Of them, ml-jobs uses
# only SelfSubjectReview (``submit`` asks who it is authenticated as, for the owner label; Kubernetes >= 1.28).
BASIC_USER_RULES = [
    {
        "apiGroups": ["authorization.k8s.io"],
        "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
        "verbs": ["create"],
    },
    {"apiGroups": ["authentication.k8s.io"], "resources": ["selfsubjectreviews"], "verbs": ["create"]},
]
_VERBS = {"GET": "get", "HEAD": "get", "POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


def attributes(request: Logged) -> Attributes:
    """RBAC attributes of one request, as the API server derives them from method, path and query.

    ``/api/v1/...`` is the core group, ``/apis/<group>/<version>/...`` a named one; then
    ``[namespaces/<ns>/]<resource>[/<name>[/<subresource>]]``. GET on a collection is ``list`` (``watch`` with
    ``watch=true``), GET on a name ``get``; DELETE on a collection is ``deletecollection``.
    """
    parts = request.path.strip("/").split("/")
    if parts[0] == "api" and len(parts) >= 3:
        group, rest = "", parts[2:]
    elif parts[0] == "apis" and len(parts) >= 4:
        group, rest = parts[1], parts[3:]
    else:
        raise AssertionError(f"not a resource request (non-resource URLs need a ClusterRole): {request!r}")
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, rest = rest[1], rest[2:]
    resource = rest[0]
    name = rest[1] if len(rest) > 1 else None
    if len(rest) > 2:
        resource = f"{resource}/{rest[2]}"
    verb = _VERBS[request.method]
    if name is None and verb == "get":
        verb = "watch" if request.query.get("watch") in {"true", "1"} else "list"
    elif name is None and verb == "delete":
        verb = "deletecollection"
    return Attributes(group, resource, verb, namespace)


def allowed(rules: list[dict[str, list[str]]], a: Attributes) -> bool:
    """Does any PolicyRule allow ``a`` (RBAC's rule matching: group, resource, verb; ``*`` matches all)."""

    def has(values: list[str], value: str) -> bool:
        return "*" in values or value in values

    return any(
        has(r["apiGroups"], a.api_group) and has(r["resources"], a.resource) and has(r["verbs"], a.verb)
        for r in rules
    )


def test_attributes_follow_the_api_servers_request_info() -> None:
    ns = "/api/v1/namespaces/team-a"

    def of(method: str, path: str, **query: str) -> tuple[str, str, str, str | None]:
        a = attributes(Logged(method, path, query, None))
        return a.api_group, a.resource, a.verb, a.namespace

    assert of("GET", f"{ns}/pods") == ("", "pods", "list", "team-a")
    assert of("GET", f"{ns}/pods", watch="true") == ("", "pods", "watch", "team-a")
    assert of("GET", f"{ns}/pods/p-1") == ("", "pods", "get", "team-a")
    assert of("GET", f"{ns}/pods/p-1/log", follow="true") == ("", "pods/log", "get", "team-a")
    assert of("POST", "/apis/batch/v1/namespaces/team-a/jobs") == ("batch", "jobs", "create", "team-a")
    assert of("PATCH", f"{ns}/configmaps/x") == ("", "configmaps", "patch", "team-a")
    assert of("PUT", f"{ns}/configmaps/x") == ("", "configmaps", "update", "team-a")
    assert of("DELETE", f"{ns}/configmaps") == ("", "configmaps", "deletecollection", "team-a")
    assert of("GET", "/api/v1/nodes") == ("", "nodes", "list", None)
    assert of("GET", "/api/v1/namespaces/team-a") == ("", "namespaces", "get", None)
    review = of("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews")
    assert review == ("authentication.k8s.io", "selfsubjectreviews", "create", None)
    assert allowed(BASIC_USER_RULES, Attributes(*review))
    assert not allowed(BASIC_USER_RULES, Attributes("", "nodes", "list", None))
    with pytest.raises(AssertionError, match="not a resource request"):
        attributes(Logged("GET", "/version", {}, None))
    rules = rbac.policy_rules()
    assert allowed(rules, Attributes("", "pods/log", "get", "team-a"))
    assert not allowed(rules, Attributes("", "pods", "watch", "team-a"))
    assert not allowed(rules, Attributes("batch", "jobs", "patch", "team-a"))
    assert not allowed(rules, Attributes("", "secrets", "get", "team-a"))


def an_engineers_day(cluster: TeamCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ``ml-jobs`` cluster command, through the CLI, as one engineer uses them over a sweep's life."""
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("ML_JOBS_RESULTS_PATH", raising=False)
    # KWOK's nodes run nothing, so the reader pod never ends: results gives up after 2 s instead of 120 s.
    read_with_pod = results_module.read_with_pod
    monkeypatch.setattr(
        results_module, "read_with_pod", lambda *a, **kw: read_with_pod(*a, **{**kw, "timeout": 2})
    )
    config = cluster.kubeconfig(tmp_path / "kubeconfig")
    runner = CliRunner()

    def ml_jobs(*args: str, ok: bool = True) -> str:
        result = runner.invoke(app, [*args, "--kubeconfig", str(config)], env={"COLUMNS": "120"})
        assert (result.exit_code == 0) == ok, (args, result.output, result.exception)
        return result.output + ("" if ok else str(result.exception))  # main() prints errors; the app raises them

    def spec_file(file: str, runs: int, **overrides: Any) -> str:
        path = tmp_path / file
        path.write_text(yaml.safe_dump(experiment(runs, **overrides).to_dict()), encoding="utf-8")
        return str(path)

    # 6 runs of 4 GPUs each, 3 s each: the team's quota (8 GPUs) admits two pods at a time, the rest wait.
    four_gpus = {"cpu": "4", "memory": "16Gi", "gpus": 4, "gpu_product": GPU_PRODUCT}
    spec = spec_file("bert-sweep.yaml", 6, resources=four_gpus, env={"HERD_SIMULATED_DURATION": "3s"})

    ml_jobs("submit", spec)
    assert "nothing created" in ml_jobs("submit", spec)
    running = cluster.wait("two runs running", lambda: [] if len(pods := _running(cluster)) != 2 else pods)
    first, second = sorted(int(p["metadata"]["annotations"][_INDEX]) for p in running)
    cluster.wait("the quota refusing a pod", lambda: _quota_refused(cluster))
    pending = ml_jobs("status", "bert-sweep")
    assert "why pending:" in pending and "namespace quota herd-team-quota exceeded" in pending, pending
    # The logs of a run that started: the real server allows it, and cannot reach KWOK's node for the content.
    assert "failed to log pod" in ml_jobs("logs", "bert-sweep", str(first), ok=False)
    run = layout.run_name(second)
    assert "failed to log pod" in ml_jobs("logs", "bert-sweep", run, "-f", "--tail", "1", ok=False)
    assert "6 succeeded" in ml_jobs("status", "bert-sweep", "--watch", "--interval", "0.5")
    # results through the reader pod: admitted, placed, never finished on KWOK, deleted again
    assert "did not finish within 2s" in ml_jobs("results", "bert-sweep", ok=False)
    volume = results_volume(cluster.admin, cluster.namespace)
    for i in range(6):  # stand-in for the runs' processes writing their metrics
        write_run_results(volume, layout.experiment_dir_name("bert-sweep"), i, {"accuracy": 0.5 + i / 100})
    assert "run-00005" in ml_jobs("results", "bert-sweep", "--results-path", str(volume))
    assert "bert-sweep" in ml_jobs("ls")
    ml_jobs("submit", spec_file("bert-sweep-2.yaml", 8, resources=four_gpus, env=HOLD), "--new-revision")
    cluster.wait("revision 2 running", lambda: len(_running(cluster, "bert-sweep-r2")) == 2)
    assert "cancelled experiment bert-sweep revision 2" in ml_jobs("cancel", "bert-sweep", "-y")
    # A submit the server refuses (an admission webhook, say) is rolled back: its ConfigMaps are deleted.
    cluster.inject("POST", "/jobs$", 422, message="denied by policy")
    ml_jobs("submit", spec_file("gpt-sweep.yaml", 2, name="gpt-sweep"), ok=False)
    assert not [c for c in cluster.all("configmaps") if c["metadata"]["name"].startswith("gpt-sweep")]


HOLD = {"HERD_SIMULATED_HOLD": "1"}


def _running(cluster: TeamCluster, job: str = "bert-sweep") -> list[dict[str, Any]]:
    return [p for p in cluster.pods(job) if p.get("status", {}).get("phase") == "Running"]


def _quota_refused(cluster: TeamCluster) -> bool:
    return any(
        e["reason"] == "FailedCreate" and "exceeded quota" in e["message"]
        for e in cluster.all("events")
        if e["involvedObject"]["kind"] == "Job"
    )


def test_every_request_of_an_engineers_day_is_allowed_by_the_real_authorizer_and_every_rule_is_used(
    cluster: TeamCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    an_engineers_day(cluster, tmp_path, monkeypatch)

    sent = [(r, attributes(r)) for r in cluster.log]
    assert len(sent) > 40
    # The real RBAC authorizer allowed every request alice sent (the 422 is the one the proxy injected).
    refused = [r for r, _ in sent if r.status in (401, 403)]
    assert refused == [], f"the real API server refused: {refused}"
    assert [r for r, _ in sent if r.status == 422] == cluster.requests("POST", "/jobs")[-1:]
    # Outside the team namespace a Role grants nothing: only what every authenticated user may do is used there.
    outside = [(r, a) for r, a in sent if a.namespace != cluster.namespace]
    assert {(a.api_group, a.resource, a.verb, a.namespace) for _, a in outside} == {
        ("authentication.k8s.io", "selfsubjectreviews", "create", None)
    }, f"requests outside the team namespace: {[r for r, _ in outside]}"
    assert all(allowed(BASIC_USER_RULES, a) for _, a in outside)
    # The mapping agrees with the real authorizer: every request it allowed, the Role's rules allow.
    rules = rbac.policy_rules()
    sent = [(r, a) for r, a in sent if a.namespace == cluster.namespace]
    denied: dict[Attributes, Logged] = {}
    for r, a in sent:
        if not allowed(rules, a):
            denied.setdefault(a, r)
    assert denied == {}, "the real server allowed requests the Role's rules do not: " + "; ".join(
        f"{a.api_group or 'core'} {a.resource} {a.verb} (e.g. {r!r})" for a, r in denied.items()
    )
    used = {(a.api_group, a.resource, a.verb) for _, a in sent}
    granted = {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
        # This day's namespace has no team queue; a queued day uses Kueue's rules (test_queues.py).
        if group not in (queueing.GROUP, queueing.VISIBILITY_GROUP)
    }
    assert granted - used == set(), "the herd-submitter Role grants what no ml-jobs command uses"


def test_the_role_in_the_cluster_is_the_one_ml_jobs_defines(cluster: TeamCluster) -> None:
    role = cluster.admin.request(
        "GET", f"/apis/rbac.authorization.k8s.io/v1/namespaces/{cluster.namespace}/roles/herd-submitter"
    )
    assert role is not None and role["rules"] == rbac.policy_rules()


@pytest.mark.parametrize(
    ("command", "verb", "resource"),
    [
        (["ls"], "list", "configmaps"),
        (["status", "bert-sweep"], "get", "configmaps"),
    ],
)
def test_a_namespace_without_her_role_is_refused_by_the_real_authorizer_in_one_line(
    cluster: TeamCluster, tmp_path: Path, command: list[str], verb: str, resource: str
) -> None:
    # GIVEN alice's own kubeconfig (her client certificate, straight to the API server)
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig(tmp_path / "kubeconfig", direct=True))}
    env.pop("HERD_DEBUG", None)
    # WHEN she points a command at the nlp team's namespace, where she holds no Role
    done = subprocess.run(
        [sys.executable, "-c", "from ml_jobs.cli import main; main()", *command, "-n", "nlp"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    # THEN the real server's refusal, in one line on stderr, and no traceback
    assert done.returncode == 2 and done.stdout == "", (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"ml-jobs: error: forbidden: you may not {verb} {resource} in namespace 'nlp' (")
    assert f'User "alice" cannot {verb} resource "{resource}" in API group "" in the namespace "nlp"' in lines[0]


def test_the_cluster_doc_shows_the_submitter_rules() -> None:
    section = PERMISSIONS.text()
    assert rbac.markdown_table() in section, f"{PERMISSIONS.doc}: paste ml_jobs.rbac.markdown_table() there"
