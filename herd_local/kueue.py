"""Kueue out of cluster, as its own integration tests run it: its CRDs and webhook configurations from its module
(kept by scripts/components.sh beside the binary of the same build), URL webhooks on loopback with a certificate
from the cluster's CA (no internal certificate management), herd's Configuration (``infra.addons.queues``), and
its visibility API (queue positions) behind the API server's aggregation layer, reached through an ExternalName
Service to loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from herd_local.pki import b64
from herd_local.ports import Ports

__all__ = [
    "VISIBILITY_SERVICE",
    "config",
    "install_certificates",
    "manifests_dir",
    "mount_wrap",
    "visibility_api",
    "webhooks",
]

_METRICS_CERTS = Path("/etc/kueue/metrics/certs")
_VISIBILITY_CERTS = Path("/visibility")
# The Service Kueue's visibility API is reached through, named as its chart names it.
VISIBILITY_SERVICE = "kueue-visibility-server"
# Kueue's webhooks herd needs: its own objects and batch/v1 Jobs (the one integration herd configures).
_WEBHOOK_GROUPS = {"kueue.x-k8s.io", "batch"}


def manifests_dir(bin_dir: Path) -> Path:
    """Kueue's CRDs (``crds/``) and webhook configurations (``webhook/``), from its module, kept by
    ``scripts/components.sh`` beside the binary of the same build."""
    return (bin_dir / "kueue").resolve().parent.parent


def webhooks(manifests: Path, ports: Ports, pki: dict[str, tuple[Path, Path]]) -> list[dict[str, Any]]:
    """Kueue's webhook configurations from its module, for the webhooks of its own objects and of Jobs, each
    pointing at the out-of-cluster Kueue on loopback (a URL, with this cluster's CA) instead of a Service."""
    ca = b64(pki["kueue-webhook"][0].parent / "ca.crt")
    out = []
    for doc in yaml.safe_load_all(manifests.read_text()):
        if not doc:
            continue
        hooks = []
        for hook in doc["webhooks"]:
            groups = {g for rule in hook["rules"] for g in rule["apiGroups"]}
            if not groups <= _WEBHOOK_GROUPS:
                continue
            path = hook["clientConfig"]["service"]["path"]
            url = f"https://127.0.0.1:{ports.kueue_webhooks}{path}"
            hooks.append({**hook, "clientConfig": {"url": url, "caBundle": ca}})
        doc["metadata"] = {"name": f"kueue-{doc['metadata']['name']}"}
        doc["webhooks"] = hooks
        out.append(doc)
    return out


def install_certificates(directory: Path, pki: dict[str, tuple[Path, Path]]) -> tuple[Path, Path]:
    """The webhook and visibility certificates as Kueue reads them (``tls.crt``, ``tls.key``), under
    ``directory``; the two directories."""
    out = []
    for name, sub in (("kueue-webhook", "certs"), ("kueue-visibility", "visibility")):
        target = directory / sub
        target.mkdir(parents=True)
        cert, key = pki[name]
        (target / "tls.crt").write_bytes(cert.read_bytes())
        (target / "tls.key").write_bytes(key.read_bytes())
        (target / "tls.key").chmod(0o600)
        out.append(target)
    return out[0], out[1]


def config(ports: Ports, webhook_certs: Path, *, manage_jobs_without_queue: bool = True) -> dict[str, Any]:
    """herd's Kueue Configuration, with the loopback addresses and certificates of this cluster; without
    ``manage_jobs_without_queue`` (a cluster without the teams' LocalQueues) Kueue leaves unlabelled Jobs alone."""
    from infra.addons.queues import KUEUE_NAMESPACE, manager_config

    herd = manager_config()
    return {
        **herd,
        "manageJobsWithoutQueueName": manage_jobs_without_queue and herd["manageJobsWithoutQueueName"],
        "namespace": KUEUE_NAMESPACE,
        "internalCertManagement": {"enable": False},
        "webhook": {"host": "127.0.0.1", "port": ports.kueue_webhooks, "certDir": str(webhook_certs)},
        "metrics": {"bindAddress": f"127.0.0.1:{ports.kueue_metrics}"},
        "health": {"healthProbeBindAddress": f"127.0.0.1:{ports.kueue_health}"},
        "visibilityServer": {"bindAddress": "127.0.0.1", "bindPort": ports.kueue_visibility},
        "leaderElection": {"leaderElect": False},
    }


def mount_wrap(webhook_certs: Path, visibility_certs: Path) -> list[str]:
    """What starts Kueue with its certificates where it reads them without internal certificate management.

    Kueue reads its metrics and visibility certificates from fixed paths, /etc/kueue/metrics/certs and
    /visibility: this cluster's certificates are bind-mounted there in a mount namespace of Kueue's own (only empty
    directories are left on the machine).
    """
    for directory in (_METRICS_CERTS, _VISIBILITY_CERTS):
        directory.mkdir(parents=True, exist_ok=True)
    mount = f'mount --bind "$0" {_METRICS_CERTS} && mount --bind "$1" {_VISIBILITY_CERTS} && shift && exec "$@"'
    return [
        "unshare",
        "--mount",
        "--propagation=private",
        "sh",
        "-c",
        mount,
        str(webhook_certs),
        str(visibility_certs),
    ]


def visibility_api(ports: Ports, pki: dict[str, tuple[Path, Path]]) -> list[dict[str, Any]]:
    """Kueue's visibility API registered with the aggregator: an APIService whose Service is an ExternalName
    ``localhost``, so the API server proxies to the out-of-cluster Kueue on its port, checking its certificate
    against this cluster's CA; the version the chart registers and ml-jobs reads."""
    from infra.addons.queues import KUEUE_NAMESPACE
    from ml_jobs import queueing

    version, group = queueing.VISIBILITY_VERSION, queueing.VISIBILITY_GROUP
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": VISIBILITY_SERVICE, "namespace": KUEUE_NAMESPACE},
        "spec": {"type": "ExternalName", "externalName": "localhost"},
    }
    api_service = {
        "apiVersion": "apiregistration.k8s.io/v1",
        "kind": "APIService",
        "metadata": {"name": f"{version}.{group}"},
        "spec": {
            "group": group,
            "version": version,
            "groupPriorityMinimum": 100,
            "versionPriority": 100,
            "service": {"name": VISIBILITY_SERVICE, "namespace": KUEUE_NAMESPACE, "port": ports.kueue_visibility},
            "caBundle": b64(pki["kueue-visibility"][0].parent / "ca.crt"),
        },
    }
    return [service, api_service]
