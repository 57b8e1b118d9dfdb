"""Stand-ins for the two things the local real cluster cannot run, named as such wherever a test uses them.

- **A run's process.** KWOK runs no containers, so nothing writes a run's ``metrics.json`` to the results volume.
  :func:`write_run_results` writes what the run would have, into the directory behind the team's results claim
  (the ``hostPath`` PersistentVolume that stands in for NFS, ``herd_local.objects.stand_in_volumes``), found
  through the claim and its volume on the real API server.
- **cluster-autoscaler.** It needs a cloud. :func:`autoscaler_event` creates, as the cluster's admin through the
  real API, the core/v1 Event cluster-autoscaler writes on a pending pod (``TriggeredScaleUp`` /
  ``NotTriggerScaleUp``), in the shape client-go's event recorder gives it.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml_jobs import layout

if TYPE_CHECKING:
    from tests.conftest import Admin


def results_volume(admin: Admin, namespace: str, claim: str = "herd-results") -> Path:
    """The local directory behind ``claim``: the hostPath of the PersistentVolume it is bound to."""
    pvc = admin.request("GET", f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}")
    assert pvc is not None and pvc["spec"].get("volumeName"), f"claim {namespace}/{claim} is not bound"
    pv = admin.request("GET", f"/api/v1/persistentvolumes/{pvc['spec']['volumeName']}")
    root = Path(pv["spec"]["hostPath"]["path"])
    root.mkdir(parents=True, exist_ok=True)
    return root


def write_run_results(
    volume: Path,
    experiment_dir: str,
    index: int,
    metrics: dict[str, Any],
    params: dict[str, Any] | None = None,
) -> Path:
    """What run ``index`` writes to the results volume (stand-in for its process): metrics.json, params.json."""
    run = Path(layout.run_dir(volume / experiment_dir, index))
    run.mkdir(parents=True, exist_ok=True)
    (run / layout.METRICS_FILE_NAME).write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    if params is not None:
        (run / layout.PARAMS_FILE_NAME).write_text(json.dumps(params) + "\n", encoding="utf-8")
    return run


def autoscaler_event(admin: Admin, pod: dict[str, Any], reason: str, message: str) -> dict[str, Any]:
    """The Event cluster-autoscaler writes on a pending ``pod`` (stand-in for cluster-autoscaler, which needs a
    cloud): ``TriggeredScaleUp`` with ``pod triggered scale-up: [{<group> <from>-><to> (max: <max>)}]``, or
    ``NotTriggerScaleUp`` with ``pod didn't trigger scale-up: <reasons>``."""
    meta = pod["metadata"]
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta['name']}.{secrets.token_hex(8)}", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "namespace": meta["namespace"],
            "name": meta["name"],
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
        },
        "reason": reason,
        "message": message,
        "source": {"component": "cluster-autoscaler"},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "type": "Normal",
        "reportingComponent": "cluster-autoscaler",
        "reportingInstance": "",
    }
    return admin.request("POST", f"/api/v1/namespaces/{meta['namespace']}/events", event)
