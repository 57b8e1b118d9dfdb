"""``ml-jobs status`` shows each finished run's metrics from its pod's termination message: no results volume
mounted, no reader pod. The kubelet double runs every pod's real container command — the entry shim from the
sweep ConfigMap and the run's command — and puts the file the shim wrote at ``terminationMessagePath`` into
``state.terminated.message``, as the kubelet does."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ml_jobs import _labels as L
from ml_jobs.cli import app
from ml_jobs.kube import registry, submit, sweep_status
from tests.ml_jobs.cluster.conftest import GPU_PRODUCT, experiment
from tests.ml_jobs.cluster.doubles import JobControllerDouble, KubeletDouble, SchedulerDouble, node
from tests.ml_jobs.cluster.emulator import EmulatedCluster
from tests.ml_jobs.cluster.test_config import write_kubeconfig

pytestmark = pytest.mark.emulator

RUN = """
import json, os, sys
i = int(os.environ["RUN_INDEX"])
print("training run", i)
if i == 1:
    sys.exit(0)  # a run that reports no metrics
metrics = {"loss": 1 - i / 10, "accuracy": 0.5 + i / 100}
if i == 2:  # far more than the 4096 bytes the kubelet keeps of a termination message
    metrics.update({"layer_%04d_grad_norm" % k: k / 3 for k in range(1000)})
with open(os.environ["METRICS_FILE"], "w") as f:
    json.dump(metrics, f)
"""


def test_status_shows_metrics_from_the_pods_termination_messages_without_the_volume(
    cluster: EmulatedCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ML_JOBS_RESULTS_PATH", raising=False)
    controller = JobControllerDouble(cluster)
    scheduler = SchedulerDouble(cluster, [node("gpu-1", labels={"nvidia.com/gpu.product": GPU_PRODUCT}, gpus=4)])
    kubelet = KubeletDouble(cluster, controller)
    volume = tmp_path / "nfs"
    volume.mkdir()
    api = cluster.api()
    exp = experiment(3, python=sys.executable, command=[sys.executable, "-c", RUN], args=[], parallelism=3)
    submit(api, exp, owner="alice")
    pods = {
        int(p["metadata"]["labels"][L.COMPLETION_INDEX]): p["metadata"]["name"]
        for p in controller.sync("bert-sweep")
    }
    for name in pods.values():
        assert scheduler.schedule(name) == "gpu-1"
        assert kubelet.run_container(name, {"team-results": volume}, tmp_path / name) == 0
    cluster.reset_log()

    status = sweep_status(api, "bert-sweep")  # no results_path: nothing read from the volume

    assert status.job_state == "complete" and [r.state for r in status.runs] == ["succeeded"] * 3
    assert status.runs[0].metrics == {"accuracy": 0.5, "loss": 1.0}  # objective first, as the shim wrote it
    assert status.runs[1].metrics is None
    cut = status.runs[2].metrics
    assert cut is not None and next(iter(cut)) == "accuracy" and cut["accuracy"] == 0.52
    full = json.loads((volume / "bert-sweep" / "run-00002" / "metrics.json").read_text())
    assert len(full) == 1002 and 100 < len(cut) < len(full) and all(full[k] == v for k, v in cut.items())
    pod = cluster.get("pods", pods[0])
    assert pod is not None
    message = pod["status"]["containerStatuses"][0]["state"]["terminated"]["message"]
    assert message == (tmp_path / pods[0] / "termination-log").read_text() == '{"accuracy":0.5,"loss":1.0}'
    assert "training run 0" in cluster.logs[(cluster.namespace, pods[0])]
    # Three reads and the end recorded — with the metrics, which the registry now keeps after the Job is gone.
    assert [r.method for r in cluster.log] == ["GET", "GET", "GET", "PATCH"]
    rows = registry.read(api, "bert-sweep").runs(1)  # type: ignore[union-attr]
    assert [(row.get("metrics") or {}).get("accuracy") for row in rows] == [0.5, None, 0.52]

    config = write_kubeconfig(tmp_path / "kubeconfig", cluster.url)
    out = CliRunner().invoke(app, ["status", "bert-sweep", "--kubeconfig", str(config)], env={"COLUMNS": "120"})
    assert out.exit_code == 0, out.output
    table = out.output.splitlines()
    header = next(line for line in table if line.startswith("run "))
    assert header.split()[-1] == "accuracy"
    assert [line.split()[-1] for line in table if line.startswith("run-0000")] == ["0.5", "—", "0.52"]
    api.close()
