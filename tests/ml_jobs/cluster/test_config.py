"""Client configuration like kubectl's, and API error mapping (one test against the real API server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from ml_jobs.errors import (
    ApiError,
    ClusterConfigError,
    ConflictError,
    ForbiddenError,
    InvalidError,
    NotFoundError,
    ServerError,
)
from ml_jobs.kube import connect, load
from ml_jobs.kube._api import map_api_exception
from tests.ml_jobs.cluster.conftest import TeamCluster


def write_kubeconfig(path: Path, server: str) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "onprem", "cluster": {"server": server}},
            {"name": "other", "cluster": {"server": "http://127.0.0.1:9"}},
        ],
        "users": [{"name": "alice", "user": {"token": "test-token-made-at-test-time"}}],
        "contexts": [
            {"name": "herd", "context": {"cluster": "onprem", "user": "alice", "namespace": "team-a"}},
            {"name": "herd-b", "context": {"cluster": "onprem", "user": "alice", "namespace": "team-b"}},
            {"name": "bare", "context": {"cluster": "onprem", "user": "alice"}},
        ],
        "current-context": "herd",
    }
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_PORT", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


@pytest.mark.parametrize(
    ("context", "namespace", "want"),
    [
        (None, None, "team-a"),  # current context's namespace
        ("herd-b", None, "team-b"),  # --context picks another context's namespace
        ("herd-b", "scratch", "scratch"),  # --namespace wins
        ("bare", None, "default"),  # a context without a namespace: default, like kubectl
    ],
)
def test_namespace_like_kubectl(tmp_path: Path, context: str | None, namespace: str | None, want: str) -> None:
    cfg = write_kubeconfig(tmp_path / "config", "http://127.0.0.1:6443")
    target = load(kubeconfig=str(cfg), context=context, namespace=namespace)
    assert target.namespace == want
    assert target.host == "http://127.0.0.1:6443"
    assert target.configuration.api_key["BearerToken"] == "Bearer test-token-made-at-test-time"
    assert target.configuration.retries is False


def test_kubeconfig_env_and_unknown_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = write_kubeconfig(tmp_path / "config", "http://127.0.0.1:6443")
    monkeypatch.setenv("KUBECONFIG", str(cfg))
    assert load().source.endswith("(context herd)")
    with pytest.raises(ClusterConfigError, match=r"context 'nope' not found \(contexts: bare, herd, herd-b\)"):
        load(context="nope")


def test_no_config_anywhere_is_one_clear_line() -> None:
    with pytest.raises(ClusterConfigError, match=r"no kubeconfig found .* and not running in a pod"):
        load()
    with pytest.raises(ClusterConfigError, match="kubeconfig /nonexistent: no such file"):
        load(kubeconfig="/nonexistent")


def test_in_cluster_service_account(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "token").write_text("sa-token-made-at-test-time")
    (sa / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nnot-a-real-ca\n-----END CERTIFICATE-----\n")
    (sa / "namespace").write_text("team-c\n")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")

    target = load(service_account_dir=sa)

    assert (target.host, target.namespace, target.source) == (
        "https://10.96.0.1:443",
        "team-c",
        "in-cluster service account",
    )
    assert target.configuration.ssl_ca_cert == str(sa / "ca.crt")
    assert load(service_account_dir=sa, namespace="x").namespace == "x"
    with pytest.raises(ClusterConfigError, match="--context herd: no kubeconfig found"):
        load(service_account_dir=sa, context="herd")


@pytest.mark.real_cluster
def test_requests_go_to_the_contexts_namespace(tmp_path: Path, cluster: TeamCluster) -> None:
    # GIVEN alice's kubeconfig with two contexts: her test team's namespace, and the nlp team's, where she holds
    # no Role; its current context is the nlp one
    cfg = cluster.kubeconfig(tmp_path / "config")
    doc = json.loads(cfg.read_text())
    doc["contexts"].append(
        {"name": "nlp", "context": {"cluster": "herd-local", "user": "alice", "namespace": "nlp"}}
    )
    doc["current-context"] = "nlp"
    cfg.write_text(json.dumps(doc))

    # WHEN a request is made with --context alice THEN it goes to that context's namespace (the real server: 404)
    with connect(kubeconfig=str(cfg), context="alice") as api:
        assert api.get_or_none("configmaps", "x") is None
    # AND with the current context, to nlp, where the real authorizer refuses her
    with connect(kubeconfig=str(cfg)) as api, pytest.raises(ForbiddenError, match="in namespace 'nlp'"):
        api.get_or_none("configmaps", "x")
    assert [(r.method, r.path, r.status) for r in cluster.log] == [
        ("GET", f"/api/v1/namespaces/{cluster.namespace}/configmaps/x", 404),
        ("GET", "/api/v1/namespaces/nlp/configmaps/x", 403),
    ]


class _Exc:
    """The parts of kubernetes.client.ApiException the mapping reads."""

    def __init__(self, status: int, body: dict[str, Any] | str) -> None:
        self.status = status
        self.body = body if isinstance(body, str) else json.dumps(body)


@pytest.mark.parametrize(
    ("status", "body", "kind", "text"),
    [
        (
            403,
            {
                "reason": "Forbidden",
                "message": 'jobs.batch is forbidden: User "bob" cannot delete resource "jobs"',
            },
            ForbiddenError,
            "forbidden: you may not delete jobs in namespace 'ns' (jobs.batch is forbidden: User \"bob\" cannot "
            'delete resource "jobs")',
        ),
        (
            404,
            {"reason": "NotFound", "message": 'jobs.batch "x" not found'},
            NotFoundError,
            "not found: job 'x' in namespace 'ns'",
        ),
        (
            409,
            {"reason": "AlreadyExists", "message": 'jobs.batch "x" already exists'},
            ConflictError,
            "conflict: job 'x' in namespace 'ns': jobs.batch \"x\" already exists",
        ),
        (
            422,
            {
                "reason": "Invalid",
                "message": "",
                "details": {
                    "causes": [{"field": "spec.completions", "message": "must be greater than or equal to 0"}]
                },
            },
            InvalidError,
            "invalid: the server refused to delete job 'x' in namespace 'ns': "
            "spec.completions: must be greater than or equal to 0",
        ),
        (500, {"reason": "InternalError", "message": "etcd down"}, ServerError, "500 etcd down"),
        (400, "<html>bad gateway config</html>", ApiError, "cannot delete job 'x' in namespace 'ns': 400 <html>"),
    ],
)
def test_api_errors_become_one_line_domain_errors(status: int, body: Any, kind: type, text: str) -> None:
    error = map_api_exception(_Exc(status, body), verb="delete", resource="jobs", namespace="ns", name="x")
    assert type(error) is kind
    assert text in str(error) and "\n" not in str(error)
    assert (error.status, error.verb, error.resource, error.namespace) == (status, "delete", "jobs", "ns")
