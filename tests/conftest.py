"""Shared pytest configuration for herd's test tiers, and the local real cluster every cluster-facing tier uses."""

from __future__ import annotations

import json
import os
import socket
import ssl
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from herd_ops.local_cluster import LocalCluster

REPO = Path(__file__).resolve().parent.parent


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


def _free_base_port(span: int = 11) -> int:
    """A base port with the span a local cluster uses free (``Ports``: base + 0 to base + 10)."""
    for base in range(26443, 40000, 20):
        ok = True
        for port in range(base, base + span):
            with socket.socket() as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free ports on 127.0.0.1")


def built_components(what: str) -> Path:
    """The built components' directory; skips the test where they are not built (``what`` says what it needed),
    and fails it under CI, which must build them (scripts/test.sh does)."""
    from herd_ops.local_cluster import LocalClusterError, components_dir

    try:
        return components_dir()
    except LocalClusterError as e:
        if os.environ.get("CI"):
            pytest.fail(f"CI must build the components first (scripts/test.sh does): {e}")
        pytest.skip(f"{what} is not built here: {e}")


@pytest.fixture(scope="session")
def real_control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """The local real cluster, started once per session (``scripts/local-cluster.sh up`` does the same)."""
    from herd_ops.local_cluster import LocalCluster

    bin_dir = built_components("the real control plane")
    cluster = LocalCluster(tmp_path_factory.mktemp("real-cluster"), _free_base_port(), bin_dir)
    cluster.up(log=lambda _m: None)
    try:
        yield cluster
    finally:
        cluster.down(quiet=True)


@pytest.fixture(scope="session")
def admin(real_control_plane: LocalCluster) -> Admin:
    return Admin(real_control_plane)
