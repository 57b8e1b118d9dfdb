"""The real ``ml-jobs`` CLI (subprocesses, kubeconfig -> emulator) through a whole sweep: the README transcript."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ml_jobs.kube import registry
from tests.ml_jobs.cluster.conftest import GPU_PRODUCT, experiment
from tests.ml_jobs.cluster.doubles import JobControllerDouble, KubeletDouble, SchedulerDouble, node
from tests.ml_jobs.cluster.emulator import EmulatedCluster
from tests.ml_jobs.cluster.readme_demo import run
from tests.ml_jobs.cluster.test_config import write_kubeconfig


@pytest.mark.emulator
@pytest.mark.slow
def test_every_verb_through_the_cli() -> None:
    transcript = run(local_results=None)
    text = "\n\n".join(transcript)
    blocks = {b.split("\n", 1)[0]: b for b in transcript}

    assert "created experiment digits-sweep revision 1: Job digits-sweep with 12 runs" in text
    first, second = (b for b in transcript if b.startswith("$ ml-jobs submit examples/digits-sweep.yaml\n"))
    assert "created experiment" in first
    assert "was already submitted with this spec" in second and second.endswith("nothing created")
    refused = blocks["$ ml-jobs submit digits-sweep.yaml   # the same name, a changed sweep"]
    assert "pass --new-revision to run it as revision 2" in refused and refused.endswith("[exit status 2]")
    status, done = (b for b in transcript if b.startswith("$ ml-jobs status digits-sweep\n"))
    assert "12 runs: 4 pending, 5 running, 3 succeeded" in status
    assert "4 runs 2/4 nodes lack free cpu" in status
    assert "1/4 nodes have taint nvidia.com/gpu=present, which the run does not tolerate" in status
    assert "1/4 nodes have taint node-role.kubernetes.io/control-plane" in status
    assert "a cloud pool is scaling up: lab-cpu-burst 0->1 (max 6)" in status
    assert blocks["$ ml-jobs logs digits-sweep run-00003"].endswith("epoch 30: val accuracy 0.9030")
    # Metrics of finished runs come from their pods' termination messages: no results volume mounted.
    finished = [line for line in status.splitlines() if line.startswith("run-") and "succeeded" in line]
    assert "val_accuracy" in status and len(finished) == 3 and all(line.split()[-1] != "—" for line in finished)
    assert "· complete" in done and "12 runs: 12 succeeded" in done and "val_accuracy" in done
    assert "—" not in done.split("val_accuracy", 1)[1]
    results = blocks["$ ml-jobs results digits-sweep --plot digits.png"]
    assert "reader pod digits-sweep-results-" in results and "wrote digits.png" in results
    csv_lines = blocks["$ ml-jobs results digits-sweep --csv --limit 3"].splitlines()
    assert csv_lines[1].startswith("rank,run,index,state,") and csv_lines[2].startswith("1,run-00011,11,succeeded")
    assert len(csv_lines) == 5
    ls_after_ttl = [b for b in transcript if b.startswith("$ ml-jobs ls")][1]
    assert "digits-sweep  1    complete  12    12 succeeded" in ls_after_ttl
    assert "is gone (TTL or cancel)" in blocks["$ ml-jobs logs digits-sweep 3"]
    assert "16 run(s) that had not started never will" in blocks["$ ml-jobs cancel digits-sweep --yes"]
    assert "16 runs: 16 cancelled" in blocks["$ ml-jobs status digits-sweep --revision 2"]
    assert blocks["$ ml-jobs status nope"] == (
        "$ ml-jobs status nope\nml-jobs: error: no experiment 'nope' in namespace 'vision'\n[exit status 2]"
    )
    forbidden = blocks["$ ml-jobs submit other-sweep.yaml   # RBAC denies creating Jobs here"]
    assert "forbidden: you may not create jobs in namespace 'vision'" in forbidden
    assert "Traceback" not in text
    assert "other-sweep" not in transcript[-1]  # the refused submit left nothing behind


def test_help_does_not_import_the_kubernetes_client() -> None:
    code = (
        "import sys; from ml_jobs.cli import app; import ml_jobs._cli_cluster; print('kubernetes' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.emulator
def test_status_watch_updates_until_the_sweep_ends(
    cluster: EmulatedCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from ml_jobs import _cli_cluster
    from ml_jobs.cli import app
    from ml_jobs.kube import submit

    api = cluster.api()
    submit(api, experiment(3, parallelism=3), owner="alice")
    controller = JobControllerDouble(cluster)
    scheduler = SchedulerDouble(cluster, [node("gpu-1", labels={"nvidia.com/gpu.product": GPU_PRODUCT}, gpus=4)])
    kubelet = KubeletDouble(cluster, controller)
    controller.sync("bert-sweep")
    ticks: list[int] = []

    def tick(seconds: float) -> None:  # between two updates, one run finishes
        ticks.append(1)
        pending = [p for p in controller.pods("bert-sweep") if p["status"]["phase"] == "Pending"]
        running = [p for p in controller.pods("bert-sweep") if p["status"]["phase"] == "Running"]
        for p in pending:
            scheduler.schedule(p["metadata"]["name"])
            kubelet.start(p["metadata"]["name"])
        if running:
            kubelet.finish(running[0]["metadata"]["name"], 0)

    monkeypatch.setattr(_cli_cluster.time, "sleep", tick)
    config = write_kubeconfig(tmp_path / "config", cluster.url)
    result = CliRunner().invoke(
        app, ["status", "bert-sweep", "--watch", "--kubeconfig", str(config)], env={"COLUMNS": "120"}
    )

    assert result.exit_code == 0, result.output
    assert len(ticks) == 4  # start all, then one finish per update until the Job is complete
    assert "complete" in result.output and "3 succeeded" in result.output
    record = registry.read(api, "bert-sweep")
    assert record is not None and record.latest().state == "finished"  # type: ignore[union-attr]
    api.close()
