"""The ``herd-submitter`` Role (``ml_jobs.rbac``) against what ``ml-jobs`` really sends.

An engineer's whole day runs through the real CLI (in-process) against the API emulator, which logs every
request. Each request is mapped to the attributes the API server's RBAC authorizer checks — (API group,
resource[/subresource], verb, namespace), derived from method, path and query the way the server's
``RequestInfoFactory`` derives them — and must be allowed by the Role's rules; every verb the rules grant must be
used by some request. So a request the Role lacks and a permission nobody needs both fail here.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from ml_jobs import _cli_cluster, rbac
from ml_jobs.cli import app
from tests.ml_jobs.cluster.conftest import experiment, gpu_cluster_nodes
from tests.ml_jobs.cluster.doubles import JobControllerDouble, KubeletDouble, ResultsVolumeDouble, SchedulerDouble
from tests.ml_jobs.cluster.emulator import EmulatedCluster, Logged
from tests.ml_jobs.cluster.test_config import write_kubeconfig

REPO = Path(__file__).resolve().parents[3]
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


def an_engineers_day(cluster: EmulatedCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ``ml-jobs`` cluster command, through the CLI, as one engineer uses them over a sweep's life."""
    controller = JobControllerDouble(cluster)
    scheduler = SchedulerDouble(cluster, gpu_cluster_nodes())
    kubelet = KubeletDouble(cluster, controller)
    volume = ResultsVolumeDouble(tmp_path / "nfs")
    volume.root.mkdir()
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("ML_JOBS_RESULTS_PATH", raising=False)
    config = write_kubeconfig(tmp_path / "kubeconfig", cluster.url)
    runner = CliRunner()

    def ml_jobs(*args: str, ok: bool = True) -> str:
        result = runner.invoke(app, [*args, "--kubeconfig", str(config)], env={"COLUMNS": "120"})
        assert (result.exit_code == 0) == ok, (args, result.output, result.exception)
        return result.output

    def spec_file(file: str, runs: int, **overrides: Any) -> str:
        path = tmp_path / file
        path.write_text(yaml.safe_dump(experiment(runs, **overrides).to_dict()), encoding="utf-8")
        return str(path)

    def step() -> None:
        """The cluster between two looks: pending pods are placed and started, running ones finish."""
        for p in controller.pods("bert-sweep"):
            name, i = p["metadata"]["name"], int(p["metadata"]["annotations"][_INDEX])
            if p["status"]["phase"] == "Running":
                volume.write_metrics("bert-sweep", i, {"accuracy": 0.5 + i / 100})
                kubelet.finish(name, 0, log=f"accuracy {0.5 + i / 100}\n")
            elif p["status"]["phase"] == "Pending" and scheduler.schedule(name):
                kubelet.start(name, log="epoch 1\n")

    def run_reader(plural: str, namespace: str, name: str) -> None:  # the kubelet double runs the reader pod
        if plural == "pods" and "-results-" in name:
            asyncio.get_running_loop().run_in_executor(
                None, kubelet.run_reader, name, {"team-results": volume.root}
            )

    cluster._created_hooks.append(run_reader)
    spec = spec_file("bert-sweep.yaml", 6)

    ml_jobs("submit", spec)
    assert "nothing created" in ml_jobs("submit", spec)
    controller.sync("bert-sweep")
    step()  # two runs placed on the H100 nodes, two pending (no free GPU), two not created yet (parallelism)
    assert "why pending" in ml_jobs("status", "bert-sweep")
    assert ml_jobs("logs", "bert-sweep", "0") == "epoch 1\n"
    assert ml_jobs("logs", "bert-sweep", "run-00001", "-f", "--tail", "1") == "epoch 1\n"
    with monkeypatch.context() as m:
        m.setattr(_cli_cluster.time, "sleep", lambda seconds: step())
        assert "6 succeeded" in ml_jobs("status", "bert-sweep", "--watch")
    assert "reader pod bert-sweep-results-" in ml_jobs("results", "bert-sweep")
    assert "bert-sweep" in ml_jobs("ls")
    ml_jobs("submit", spec_file("bert-sweep-2.yaml", 8), "--new-revision")
    controller.sync("bert-sweep-r2")
    assert "cancelled experiment bert-sweep revision 2" in ml_jobs("cancel", "bert-sweep", "-y")
    # A submit the server refuses (an admission webhook, say) is rolled back: its ConfigMaps are deleted.
    cluster.inject("POST", "/jobs$", 422, message="denied by policy")
    ml_jobs("submit", spec_file("gpt-sweep.yaml", 2, name="gpt-sweep"), ok=False)
    assert not [c for c in cluster.all("configmaps") if c["metadata"]["name"].startswith("gpt-sweep")]


@pytest.mark.emulator
def test_every_request_of_an_engineers_day_is_allowed_and_every_rule_is_used(
    cluster: EmulatedCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    an_engineers_day(cluster, tmp_path, monkeypatch)

    rules = rbac.policy_rules()
    sent = [(r, attributes(r)) for r in cluster.log]
    assert len(sent) > 40
    # Outside the team namespace a Role grants nothing: only what every authenticated user may do is allowed there.
    outside = [(r, a) for r, a in sent if a.namespace != cluster.namespace]
    assert {(a.api_group, a.resource, a.verb, a.namespace) for _, a in outside} == {
        ("authentication.k8s.io", "selfsubjectreviews", "create", None)
    }, f"requests outside the team namespace: {[r for r, _ in outside]}"
    assert all(allowed(BASIC_USER_RULES, a) for _, a in outside)
    sent = [(r, a) for r, a in sent if a.namespace == cluster.namespace]
    denied: dict[Attributes, Logged] = {}
    for r, a in sent:
        if not allowed(rules, a):
            denied.setdefault(a, r)
    assert denied == {}, "ml-jobs sends requests the herd-submitter Role does not allow: " + "; ".join(
        f"{a.api_group or 'core'} {a.resource} {a.verb} (e.g. {r!r})" for a, r in denied.items()
    )
    used = {(a.api_group, a.resource, a.verb) for _, a in sent}
    granted = {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    assert granted - used == set(), "the herd-submitter Role grants what no ml-jobs command uses"


def test_the_readme_shows_the_submitter_rules() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("<!-- section: cluster -->") : readme.index("<!-- end section: cluster -->")]
    assert rbac.markdown_table() in section, "README's permissions table: paste ml_jobs.rbac.markdown_table()"
