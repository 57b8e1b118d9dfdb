"""``ml-jobs status`` shows each finished run's metrics from its pod's termination message: no results volume
mounted, no reader pod.

On the real control plane the message travels as on a real cluster — container status, pod, the real API server,
status — but KWOK runs no process: it writes the message its stage is given, here what the entry shim writes for
each run's metrics (its own function, ``layout.termination_message``, which keeps within the kubelet's 4096
bytes). The shim itself writing the file and the kubelet reading it back need a real node (the next tier).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ml_jobs import layout
from ml_jobs.cli import app
from ml_jobs.kube import registry, submit, sweep_status
from tests.ml_jobs.cluster.conftest import TeamCluster, experiment, outcomes

pytestmark = pytest.mark.real_cluster


def _metrics(i: int) -> dict[str, Any]:
    metrics: dict[str, Any] = {"loss": 1 - i / 10, "accuracy": 0.5 + i / 100}
    if i == 2:  # far more than the 4096 bytes the kubelet keeps of a termination message
        metrics.update({f"layer_{k:04d}_grad_norm": k / 3 for k in range(1000)})
    return metrics


def test_status_shows_metrics_from_the_pods_termination_messages_without_the_volume(
    cluster: TeamCluster, api: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ML_JOBS_RESULTS_PATH", raising=False)
    # GIVEN three runs: run 0 reports metrics, run 1 none, run 2 more than a termination message holds
    messages = {i: layout.termination_message(_metrics(i), "accuracy") for i in (0, 2)}
    assert messages[2] is not None and len(messages[2].encode()) <= layout.TERMINATION_MESSAGE_LIMIT
    script = {str(i): {"exitCode": 0, "message": m} for i, m in messages.items()}
    submit(api, experiment(3, env=outcomes(script), parallelism=3), owner="alice")
    cluster.wait_job("bert-sweep", "Complete")
    cluster.reset_log()

    # WHEN alice looks at the sweep, with no results volume mounted
    status = sweep_status(api, "bert-sweep")

    # THEN each finished run's metrics come from its pod, the objective's first, and a cut message stays whole
    assert status.job_state == "complete" and [r.state for r in status.runs] == ["succeeded"] * 3
    assert status.runs[0].metrics == {"accuracy": 0.5, "loss": 1.0}
    assert status.runs[1].metrics is None
    cut = status.runs[2].metrics
    full = _metrics(2)
    assert cut is not None and next(iter(cut)) == "accuracy" and cut["accuracy"] == 0.52
    assert 100 < len(cut) < len(full) and all(full[k] == v for k, v in cut.items())
    pod = next(p for p in cluster.pods("bert-sweep") if p["metadata"]["annotations"][_INDEX] == "0")
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"] == '{"accuracy":0.5,"loss":1.0}'
    # Three reads and the end recorded — with the metrics, which the registry keeps after the Job is gone.
    assert [r.method for r in cluster.log] == ["GET", "GET", "GET", "PATCH"]
    rows = registry.read(api, "bert-sweep").runs(1)  # type: ignore[union-attr]
    assert [(row.get("metrics") or {}).get("accuracy") for row in rows] == [0.5, None, 0.52]

    # AND the CLI's table has the objective's column
    config = cluster.kubeconfig(tmp_path / "kubeconfig")
    out = CliRunner().invoke(app, ["status", "bert-sweep", "--kubeconfig", str(config)], env={"COLUMNS": "120"})
    assert out.exit_code == 0, out.output
    table = out.output.splitlines()
    header = next(line for line in table if line.startswith("run "))
    assert header.split()[-1] == "accuracy"
    assert [line.split()[-1] for line in table if line.startswith("run-0000")] == ["0.5", "—", "0.52"]


_INDEX = "batch.kubernetes.io/job-completion-index"
