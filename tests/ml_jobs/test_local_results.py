"""`ml-jobs results --local`: the ranked table, --csv, --plot and --limit of local runs, from the results
directory alone — no cluster, no kubeconfig. The runs are real: started by the local backend through the shim."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from ml_jobs.errors import ResultsError
from ml_jobs.local import read_local_results, run_local
from ml_jobs.spec import Experiment

REPO = Path(__file__).resolve().parents[2]
# Writes its score (and a second metric) as metrics.json; score 0 fails the run, as a crashed training would.
SCRIPT = (
    "import json, os, sys; p = json.load(open(os.environ['PARAMS_FILE'])); "
    "sys.exit(1) if p['score'] == 0 else "
    "open(os.environ['METRICS_FILE'], 'w').write(json.dumps({'score': p['score'], 'loss': 1 - p['score']}))"
)


def experiment(scores: list[float], name: str = "local-results") -> Experiment:
    return Experiment(
        name=name,
        image="python:3.11",
        command=["python", "-c", SCRIPT],
        resources={"cpu": "100m", "memory": "64Mi"},
        retries=0,
        objective={"metric": "score", "goal": "max"},
        sweep={"list": [{"score": s} for s in scores]},
    )


def run(exp: Experiment, root: Path) -> None:
    run_local(exp, results_dir=root, console=Console(file=io.StringIO()), live=False)


def test_local_runs_are_read_back_ranked_with_their_states(tmp_path):
    root = tmp_path / "runs"
    run(experiment([0.5, 0.9, 0.0, 0.7]), root)
    found = read_local_results(root, "local-results")
    assert (found.experiment, found.revision, found.objective.metric) == ("local-results", 1, "score")
    assert [r.run for r in found.ranked()] == ["run-00001", "run-00003", "run-00000", "run-00002"]
    assert found.states == {0: "succeeded", 1: "succeeded", 2: "failed", 3: "succeeded"}
    assert found.params == ["score"] and found.source == f"local {root / 'local-results'}"


def test_the_latest_revision_by_default_and_any_on_request(tmp_path):
    root = tmp_path / "runs"
    run(experiment([0.5, 0.9]), root)
    run(experiment([0.1, 0.2, 0.3]), root)  # a changed spec: revision 2, local-results-r2/
    assert (
        read_local_results(root, "local-results").revision,
        len(read_local_results(root, "local-results").runs),
    ) == (2, 3)
    assert len(read_local_results(root, "local-results", revision=1).runs) == 2
    with pytest.raises(ResultsError, match=r"'local-results' has no local revision 3 under .*; it has 1, 2"):
        read_local_results(root, "local-results", revision=3)


def test_an_experiment_that_never_ran_here_is_one_line(tmp_path):
    with pytest.raises(
        ResultsError, match=r"no local runs of 'nope' here \(`ml-jobs run SPEC --local -o .*` makes them\)"
    ):
        read_local_results(tmp_path / "runs", "nope")


def ml_jobs(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # No cluster anywhere: KUBECONFIG names a file that does not exist, HOME has no ~/.kube.
    env = {**os.environ, "KUBECONFIG": str(cwd / "no-kubeconfig"), "HOME": str(cwd), "COLUMNS": "150"}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    return subprocess.run(
        [sys.executable, "-m", "ml_jobs.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**env, "PYTHONPATH": str(REPO)},
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_after_run_local_results_shows_them_again_without_a_cluster(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: local-results\nimage: python:3.11\ncommand: [python, script.py]\n"
        "resources: {cpu: 100m, memory: 64Mi}\nretries: 0\nobjective: {metric: score}\n"
        "sweep: {list: [{score: 0.5}, {score: 0.9}, {score: 0.7}]}\n"
    )
    (tmp_path / "script.py").write_text(SCRIPT + "\n")
    done = ml_jobs("run", str(spec), "--local", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    # The run's output ends by saying how to get the plot.
    assert done.stdout.splitlines()[-1] == (
        "score by parameter, as a plot: ml-jobs results local-results --local --plot local-results.png"
    )

    table = ml_jobs("results", "local-results", "--local", cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "local-results r1 — local runs/local-results" in table.stdout
    ranked = [line.split("│")[2].strip() for line in table.stdout.splitlines() if "run-0" in line]
    assert ranked == ["run-00001", "run-00002", "run-00000"]

    limited = ml_jobs("results", "local-results", "--local", "--csv", "--limit", "2", cwd=tmp_path)
    rows = list(csv.DictReader(io.StringIO(limited.stdout)))
    assert [(r["rank"], r["run"], r["state"], r["score"]) for r in rows] == [
        ("1", "run-00001", "succeeded", "0.9"),
        ("2", "run-00002", "succeeded", "0.7"),
    ]

    plotted = ml_jobs("results", "local-results", "--local", "--plot", "p.png", cwd=tmp_path)
    assert plotted.returncode == 0, plotted.stderr
    assert plotted.stderr == "wrote p.png\n"
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_results_dir_without_local_is_refused(tmp_path):
    done = ml_jobs("results", "x", "-o", "runs", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr == (
        "ml-jobs: error: --results-dir is where `ml-jobs run --local` wrote: add --local "
        "(the cluster's results volume mounted here is --results-path)\n"
    )
