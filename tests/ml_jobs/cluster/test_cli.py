"""The real ``ml-jobs`` CLI on the real control plane: a whole sweep as subprocesses with alice's own client
certificate (the transcript in docs/engineers/session.md, on a cluster of its own), and ``status --watch``
in-process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ml_jobs.kube import registry
from tests.ml_jobs.cluster.conftest import TeamCluster, experiment
from tests.ml_jobs.cluster.readme_demo import run


@pytest.mark.real_cluster
@pytest.mark.slow
def test_every_verb_through_the_cli() -> None:
    transcript = run(local_results=None)  # a local real cluster of its own (readme_demo)
    text = "\n\n".join(transcript)
    blocks = {b.split("\n", 1)[0]: b for b in transcript}

    assert "created experiment digits-sweep revision 1: Job digits-sweep with 12 runs" in text
    first, second = (b for b in transcript if b.startswith("$ ml-jobs submit digits-sweep.yaml\n"))
    assert "created experiment" in first
    assert "was already submitted with this spec" in second and second.endswith("nothing created")
    refused = blocks["$ ml-jobs submit digits-sweep-16.yaml   # the same name, a changed sweep"]
    assert "pass --new-revision to run it as revision 2" in refused and refused.endswith("[exit status 2]")
    status, done = (b for b in transcript if b.startswith("$ ml-jobs status digits-sweep\n"))
    assert "12 runs: 4 pending, 8 running" in status
    # Why pending: the real scheduler's words on the shrunk CPU servers and the tainted nodes (the cloud pools
    # have no node yet), and the events of the stand-in for cluster-autoscaler.
    assert "4 runs 2/7 nodes lack free cpu" in status
    assert "4 runs 5/7 nodes have taints the run does not tolerate" in status
    assert "4 runs a cloud pool is scaling up: lab-cpu-burst 0->1 (max 6)" in status
    pending_logs = next(b for b in transcript if b.startswith("$ ml-jobs logs digits-sweep run-"))
    assert "has not started: " in pending_logs and "2/7 nodes lack free cpu" in pending_logs
    # Metrics of finished runs come from their pods' termination messages: no results volume mounted.
    assert "· complete" in done and "12 runs: 12 succeeded" in done and "val_accuracy" in done
    assert "—" not in done.split("val_accuracy", 1)[1]
    nodes = [line.split()[3] for line in done.splitlines() if line.startswith("run-")]
    assert sorted(set(nodes)) == ["cpu-01", "cpu-02", "cpu-burst-1"] and nodes.count("cpu-burst-1") == 4
    results = blocks["$ ml-jobs results digits-sweep --results-path herd-results --plot digits.png"]
    assert "mounted herd-results/digits-sweep" in results and "wrote digits.png" in results
    csv_lines = blocks["$ ml-jobs results digits-sweep --results-path herd-results --csv --limit 3"].splitlines()
    assert csv_lines[1].startswith("rank,run,index,state,") and csv_lines[2].startswith("1,run-00011,11,succeeded")
    assert len(csv_lines) == 5
    ls_after_ttl = [b for b in transcript if b.startswith("$ ml-jobs ls")][1]
    assert "digits-sweep  1    complete  12    12 succeeded" in ls_after_ttl
    assert "best 3 of 12 runs" in blocks["$ ml-jobs results digits-sweep --results-path herd-results --limit 3"]
    assert "is gone (TTL or cancel)" in blocks["$ ml-jobs logs digits-sweep 3"]
    cancelled = re.search(
        r"(\d+) running run\(s\) get SIGTERM .*; (\d+) run\(s\) that had not started never will",
        blocks["$ ml-jobs cancel digits-sweep --yes"],
    )
    assert cancelled is not None and int(cancelled[1]) + int(cancelled[2]) == 16
    assert "16 runs: 16 cancelled" in blocks["$ ml-jobs status digits-sweep --revision 2"]
    assert blocks["$ ml-jobs status nope"] == (
        "$ ml-jobs status nope\nml-jobs: error: no experiment 'nope' in namespace 'vision'\n[exit status 2]"
    )
    forbidden = blocks["$ ml-jobs submit other-sweep.yaml -n nlp   # alice holds no Role in nlp"]
    assert "forbidden: you may not get configmaps in namespace 'nlp'" in forbidden
    assert 'User "alice" cannot get resource "configmaps" in API group "" in the namespace "nlp"' in forbidden
    assert "Traceback" not in text
    assert "other-sweep" not in transcript[-1]  # the refused submit left nothing behind


def test_help_does_not_import_the_kubernetes_client() -> None:
    code = (
        "import sys; from ml_jobs.cli import app; import ml_jobs._cli_cluster; print('kubernetes' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.real_cluster
def test_status_watch_updates_until_the_sweep_ends(
    cluster: TeamCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from ml_jobs import _cli_cluster
    from ml_jobs.cli import app
    from ml_jobs.kube import submit

    # GIVEN a sweep whose 3 runs each run 3 s on the real cluster
    api = cluster.api()
    submit(api, experiment(3, parallelism=3, env={"HERD_SIMULATED_DURATION": "3s"}), owner="alice")
    cluster.wait("the runs running", lambda: len(_phase(cluster, "Running")) == 3)
    ticks: list[float] = []
    real_sleep = _cli_cluster.time.sleep

    def tick(seconds: float) -> None:
        ticks.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(_cli_cluster.time, "sleep", tick)
    config = cluster.kubeconfig(tmp_path / "config")

    # WHEN alice watches it
    result = CliRunner().invoke(
        app,
        ["status", "bert-sweep", "--watch", "--interval", "0.5", "--kubeconfig", str(config)],
        env={"COLUMNS": "120"},
    )

    # THEN the view is updated every half second until the real Job controller says the Job is complete
    assert result.exit_code == 0, result.output
    assert len(ticks) >= 2 and set(ticks) == {0.5}
    assert "complete" in result.output and "3 succeeded" in result.output
    assert len(cluster.requests("GET", "/jobs/bert-sweep")) == len(ticks) + 1
    record = registry.read(api, "bert-sweep")
    assert record is not None and record.latest().state == "finished"  # type: ignore[union-attr]
    api.close()


def _phase(cluster: TeamCluster, phase: str) -> list[dict]:
    return [p for p in cluster.pods("bert-sweep") if p.get("status", {}).get("phase") == phase]


@pytest.mark.real_cluster
def test_the_cli_as_a_subprocess_with_alices_own_client_certificate(cluster: TeamCluster, tmp_path: Path) -> None:
    # GIVEN alice's kubeconfig with her client certificate, straight to the API server (no proxy)
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig(tmp_path / "kubeconfig", direct=True))}
    env.update(COLUMNS="120", USER="somebody-else")
    env.pop("ML_JOBS_RESULTS_PATH", None)
    spec = tmp_path / "bert-sweep.yaml"
    spec.write_text(yaml.safe_dump(experiment(2).to_dict()), encoding="utf-8")

    def ml_jobs(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-c", "from ml_jobs.cli import main; main()", *args],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    # WHEN she submits and looks, over TLS as the certificate's user
    submitted = ml_jobs("submit", str(spec))
    cluster.wait_job("bert-sweep", "Complete")
    status = ml_jobs("status", "bert-sweep")
    listed = ml_jobs("ls")

    # THEN the real server knew her by her certificate (the owner is alice, not the login name), in her namespace
    assert "created experiment bert-sweep revision 1: Job bert-sweep with 2 runs" in submitted
    assert f"ml-jobs status bert-sweep -n {cluster.namespace} --watch" in submitted
    assert "· complete" in status and "2 runs: 2 succeeded" in status
    assert "bert-sweep" in listed and "alice" in listed
    job = cluster.get("jobs", "bert-sweep")
    assert job is not None and job["metadata"]["labels"]["herd.dev/owner"] == "alice"
    assert cluster.log == []  # nothing went through the proxy
