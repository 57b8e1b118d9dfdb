"""The Kubernetes backend's tests run against the local real cluster (``herd_local.cluster``): upstream
etcd, kube-apiserver, kube-controller-manager and kube-scheduler at the pinned release, KWOK nodes shaped like the
example site. One cluster per test session; each test gets a fresh team namespace holding what the Pulumi program
creates in the vision team's (Role, binding, quota, limits, claim), and talks to the server as alice — a member of
the vision team's submitter group with no other rights — through the fault-injecting proxy (``faults.py``), which
logs every request and fails the ones a test asks it to.

KWOK runs no containers: a run's pod is told how to end through its spec's ``env``
(``herd_local/kwok_stages.yaml``).
"""

from __future__ import annotations

import itertools
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from herd_local.cluster import ALICE_TEAM, LocalCluster
from herd_local.objects import plan_objects, stand_in_volumes
from herd_local.paths import EXAMPLE_STACK
from herd_local.pki import write_kubeconfig
from infra import config
from infra.addons.teams import quota_hard
from infra.plan import load_stack_file
from ml_jobs.spec import Experiment
from tests.conftest import Admin
from tests.ml_jobs.cluster.faults import FaultProxy, Logged

GPU_PRODUCT = "NVIDIA-H100-80GB-HBM3"  # the example site's onprem-gpu servers: gpu-01, gpu-02, 4 GPUs each


def experiment(runs: int = 6, env: dict[str, str] | None = None, **overrides: Any) -> Experiment:
    """A GPU sweep of ``runs`` runs (random search over lr and batch size) with an objective; ``env`` tells the
    simulated nodes how runs end (``HERD_SIMULATED_*``)."""
    spec: dict[str, Any] = {
        "name": "bert-sweep",
        "image": "registry.example.com/nlp/bert:2.1",
        "command": ["python", "-m", "train"],
        "args": ["--lr", "{{ lr }}", "--batch", "{{ batch }}"],
        "resources": {"cpu": "4", "memory": "16Gi", "gpus": 1, "gpu_product": GPU_PRODUCT},
        "retries": 1,
        "parallelism": 4,
        "results": {"claim": "herd-results", "mount_path": "/mnt/results"},
        "objective": {"metric": "accuracy", "goal": "max"},
        "sweep": {
            "random": {
                "seed": 7,
                "count": runs,
                "params": {"lr": {"loguniform": [1e-5, 1e-2]}, "batch": {"choice": [16, 32, 64]}},
            }
        },
    }
    if env:
        spec["env"] = env
    spec.update(overrides)
    return Experiment(**spec)


def outcomes(table: dict[str, dict[str, Any]], **more: str) -> dict[str, str]:
    """The ``env`` that makes simulated runs end as ``table`` says (see ``herd_local/kwok_stages.yaml``)."""
    return {"HERD_SIMULATED_OUTCOMES": json.dumps(table), **more}


# ------------------------------------------------------------------------------------------------ one test's view
class TeamCluster:
    """The real cluster as one test sees it: its own team namespace, alice through the fault proxy, admin beside.

    Attributes:
        namespace: the test's team namespace.
        proxy: the fault proxy alice's requests go through.
        admin: admin access for setup and inspection.
    """

    def __init__(self, cluster: LocalCluster, namespace: str, proxy: FaultProxy, admin: Admin) -> None:
        self.local = cluster
        self.namespace = namespace
        self.proxy = proxy
        self.admin = admin

    # ---- alice
    @property
    def url(self) -> str:
        return self.proxy.url

    @property
    def log(self) -> list[Logged]:
        return self.proxy.log

    def requests(self, method: str | None = None, path: str = "") -> list[Logged]:
        return self.proxy.requests(method, path)

    def reset_log(self) -> None:
        self.proxy.reset_log()

    def inject(self, method: str, path: str, status: int | None, **kw: Any) -> Any:
        return self.proxy.inject(method, path, status, **kw)

    def configuration(self) -> Any:
        from kubernetes import client

        cfg = client.Configuration()
        cfg.host = self.proxy.url
        cfg.retries = False
        return cfg

    def api(self, *, timeout: float = 10.0, attempts: int = 3) -> Any:
        from ml_jobs.kube import Api

        return Api(self.configuration(), self.namespace, timeout=timeout, attempts=attempts, sleep=lambda s: None)

    def kubeconfig(self, path: Path, *, direct: bool = False) -> Path:
        """A kubeconfig for alice in this namespace: through the proxy (plain HTTP, the proxy holds her
        certificate), or ``direct`` to the API server with her own client certificate."""
        pki = self.local.directory / "pki"
        if direct:
            return write_kubeconfig(
                path, self.local.server, pki / "ca.crt", (pki / "alice.crt", pki / "alice.key"), "alice",
                namespace=self.namespace,
            )  # fmt: skip
        doc = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "herd-local", "cluster": {"server": self.proxy.url}}],
            "users": [{"name": "alice", "user": {}}],
            "contexts": [
                {
                    "name": "alice",
                    "context": {"cluster": "herd-local", "user": "alice", "namespace": self.namespace},
                }
            ],
            "current-context": "alice",
        }
        path.write_text(json.dumps(doc))
        return path

    # ---- admin
    def get(self, plural: str, name: str) -> dict[str, Any] | None:
        return self.admin.request("GET", Admin.path(plural, self.namespace, name))

    def all(self, plural: str, selector: str = "") -> list[dict[str, Any]]:
        query = f"?labelSelector={urllib.request.quote(selector)}" if selector else ""
        return self.admin.request("GET", Admin.path(plural, self.namespace) + query)["items"]

    def create(self, plural: str, body: dict[str, Any]) -> dict[str, Any]:
        return self.admin.request("POST", Admin.path(plural, self.namespace), body)

    def patch(self, plural: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self.admin.request(
            "PATCH", Admin.path(plural, self.namespace, name), patch, "application/merge-patch+json"
        )

    def pods(self, job: str) -> list[dict[str, Any]]:
        """The pods of Job ``job``, oldest first."""
        pods = self.all("pods", f"batch.kubernetes.io/job-name={job}")
        return sorted(pods, key=lambda p: p["metadata"]["creationTimestamp"] + p["metadata"]["name"])

    def wait(self, what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
        """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.25)

    def wait_job(self, name: str, condition: str = "", timeout: float = 90.0) -> dict[str, Any]:
        """The Job once it has ``condition`` True (default: once it is finished, Complete or Failed)."""
        wanted = {condition} if condition else {"Complete", "Failed"}

        def done() -> dict[str, Any] | None:
            job = self.get("jobs", name)
            conditions = (job or {}).get("status", {}).get("conditions", [])
            return job if any(c["type"] in wanted and c["status"] == "True" for c in conditions) else None

        return self.wait(f"Job {name} {'/'.join(sorted(wanted))}", done, timeout)


# ------------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="session")
def team_objects(real_control_plane: LocalCluster) -> list[dict[str, Any]]:
    """What the Pulumi program creates in the vision team's namespace (from its offline plan), Namespace first."""
    objects = [
        o
        for o in plan_objects()
        if (
            o["metadata"].get("namespace") == ALICE_TEAM
            or (o["kind"] == "Namespace" and o["metadata"]["name"] == ALICE_TEAM)
        )
        # Without the team's LocalQueue a namespace runs as where Kueue does not (test_queues.py makes its own;
        # the local cluster holds none either, unless asked).
        and o["kind"] != "LocalQueue"
    ]
    assert {o["kind"] for o in objects} >= {"Namespace", "ResourceQuota", "LimitRange", "Role", "RoleBinding"}
    # ... and so its ResourceQuota is the one infra gives a team without Kueue: the team's quota (with Kueue it
    # also holds what the team may borrow; test_queues.py sets that for its own teams).
    team = next(t for t in config.load(load_stack_file(EXAMPLE_STACK)).teams if t.name == ALICE_TEAM)
    for o in objects:
        if o["kind"] == "ResourceQuota":
            o["spec"]["hard"] = quota_hard(team)
    return objects


_namespaces = itertools.count(1)


def new_team_namespace(cluster: LocalCluster, objects: list[dict[str, Any]], admin: Admin) -> str:
    """A fresh namespace holding a copy of the vision team's objects (and its claim's stand-in volume)."""
    name = f"team-{os.getpid() % 10000}-{next(_namespaces)}"
    copies = json.loads(json.dumps(objects).replace(f'"{ALICE_TEAM}"', f'"{name}"'))
    for o in copies:
        o["metadata"].get("labels", {}).pop("herd.dev/team", None)
    # The volumes first: a claim created before its pre-bound volume waits for the PV controller's next resync
    # (15 s); created after it, the claim is bound at once.
    cluster.apply(stand_in_volumes(copies, cluster.directory / "volumes") + copies)

    def usable() -> bool:  # pods need the default ServiceAccount, and a bound results claim to be scheduled
        if admin.request("GET", f"/api/v1/namespaces/{name}/serviceaccounts/default") is None:
            return False
        claims = admin.request("GET", f"/api/v1/namespaces/{name}/persistentvolumeclaims")["items"]
        return all(c.get("status", {}).get("phase") == "Bound" for c in claims)

    deadline = time.monotonic() + 30
    while not usable():
        assert time.monotonic() < deadline, f"namespace {name}: no ServiceAccount or unbound claims after 30 s"
        time.sleep(0.2)
    return name


@pytest.fixture
def cluster(
    real_control_plane: LocalCluster, team_objects: list[dict[str, Any]], admin: Admin
) -> Iterator[TeamCluster]:
    """A fresh team namespace on the real cluster, alice's requests through a fresh fault proxy."""
    namespace = new_team_namespace(real_control_plane, team_objects, admin)
    pki = real_control_plane.directory / "pki"
    proxy = FaultProxy(
        real_control_plane.server, str(pki / "ca.crt"), str(pki / "alice.crt"), str(pki / "alice.key")
    )
    proxy.start()
    try:
        yield TeamCluster(real_control_plane, namespace, proxy, admin)
    finally:
        proxy.stop()
        admin.request("DELETE", f"/api/v1/namespaces/{namespace}")
        for pv in admin.request("GET", "/api/v1/persistentvolumes")["items"]:
            if pv["spec"].get("claimRef", {}).get("namespace") == namespace:
                admin.request("DELETE", f"/api/v1/persistentvolumes/{pv['metadata']['name']}")


@pytest.fixture
def api(cluster: TeamCluster) -> Iterator[Any]:
    a = cluster.api()
    try:
        yield a
    finally:
        a.close()
