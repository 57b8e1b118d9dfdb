"""Shared pytest configuration for herd's test tiers, and the local real cluster every cluster-facing tier uses."""

from __future__ import annotations

import json
import os
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from herd_local.cluster import LocalCluster

REPO = Path(__file__).resolve().parent.parent

# ------------------------------------------------------------------------------------------------ tiers
# A test's tier is its heaviest marker (scripts/test.sh TIER runs one): booted test hosts, then the local real
# cluster, then the rest ("fast": unit tests, mocks, rendered objects).
TIERS = {"hosts": "hosts", "real_cluster": "cluster"}
_tier_seconds: dict[str, float] = {}
_tier_tests: dict[str, int] = {}


def tier_of(item: pytest.Item) -> str:
    return next((tier for marker, tier in TIERS.items() if item.get_closest_marker(marker)), "fast")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.user_properties.append(("tier", tier_of(item)))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    tier = dict(report.user_properties).get("tier", "fast")
    _tier_seconds[tier] = _tier_seconds.get(tier, 0.0) + report.duration  # setup, call and teardown
    if report.when == "call" or (report.when == "setup" and report.skipped):
        _tier_tests[tier] = _tier_tests.get(tier, 0) + 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Where the minutes went, per tier (fixtures included: a cluster or a testbed counts in the tier that
    started it)."""
    if _tier_seconds:
        parts = [f"{tier} {_tier_tests.get(tier, 0)} tests {_tier_seconds[tier] / 60:.1f} min"
                 for tier in ("fast", "cluster", "hosts") if tier in _tier_seconds]  # fmt: skip
        terminalreporter.write_line("time per tier: " + ", ".join(parts))


@pytest.fixture(scope="session")
def repo() -> Path:
    """The repository root."""
    return REPO


# ------------------------------------------------------------------------------------------------ admin access
class Admin:
    """Direct access as the cluster's admin, for what a test sets up or inspects (never counted as alice's)."""

    def __init__(self, cluster: LocalCluster) -> None:
        pki = cluster.directory / "pki"
        self._ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        self._ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        self.server = cluster.server

    def request(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json", timeout: float = 30
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Content-Type", content_type)
        req.add_header("Accept", "application/json")
        try:
            with urllib.request.urlopen(req, context=self._ctx, timeout=timeout) as answer:
                return json.loads(answer.read() or b"null")
        except urllib.error.HTTPError as e:
            if e.code == 404 and method == "GET":
                return None
            raise AssertionError(f"admin {method} {path}: {e.code} {e.read().decode()[:500]}") from e

    @staticmethod
    def path(plural: str, namespace: str | None, name: str = "") -> str:
        group = {"jobs": "/apis/batch/v1", "events.k8s.io": "/apis/events.k8s.io/v1"}.get(plural, "/api/v1")
        resource = "events" if plural == "events.k8s.io" else plural
        where = f"/namespaces/{namespace}" if namespace else ""
        return f"{group}{where}/{resource}" + (f"/{name}" if name else "")


def built_components(what: str) -> Path:
    """The built components' directory; skips the test where they are not built (``what`` says what it needed),
    and fails it under CI, which must build them (scripts/test.sh does)."""
    from herd_local.components import components_dir
    from herd_local.errors import LocalClusterError

    try:
        return components_dir()
    except LocalClusterError as e:
        if os.environ.get("CI"):
            pytest.fail(f"CI must build the components first (scripts/test.sh does): {e}")
        pytest.skip(f"{what} is not built here: {e}")


@pytest.fixture(scope="session")
def real_control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """The local real cluster, started once per session (``scripts/local-cluster.sh up`` does the same)."""
    from herd_local.cluster import LocalCluster
    from herd_local.ports import free_base

    bin_dir = built_components("the real control plane")
    cluster = LocalCluster(tmp_path_factory.mktemp("real-cluster"), free_base(), bin_dir)
    cluster.up(log=lambda _m: None)
    try:
        yield cluster
    finally:
        cluster.down(quiet=True)


@pytest.fixture(scope="session")
def admin(real_control_plane: LocalCluster) -> Admin:
    return Admin(real_control_plane)
