"""Reading and ranking results from a results root laid out as ml_jobs.layout says."""

from __future__ import annotations

import io
import json
import math

from rich.console import Console

from ml_jobs import layout
from ml_jobs.results import rank, read_results, results_table
from ml_jobs.spec import Objective


def write_run(root, index, params=None, metrics=None, raw_metrics=None):
    run = root / "exp" / layout.run_name(index)
    run.mkdir(parents=True)
    if params is not None:
        (run / "params.json").write_text(json.dumps(params))
    if metrics is not None:
        (run / "metrics.json").write_text(json.dumps(metrics))
    if raw_metrics is not None:
        (run / "metrics.json").write_text(raw_metrics)


def test_runs_are_read_in_index_order_with_problems_reported(tmp_path):
    write_run(tmp_path, 2, {"lr": 0.1}, {"acc": 0.9, "note": "text", "flag": True})
    write_run(tmp_path, 0, {"lr": 0.3}, {"acc": 0.7})
    write_run(tmp_path, 1, {"lr": 0.2}, raw_metrics="{not json")
    write_run(tmp_path, 3, {"lr": 0.05}, metrics=[1, 2])
    (tmp_path / "exp" / "not-a-run").mkdir()
    results = read_results(tmp_path, "exp")
    assert [r.index for r in results] == [0, 1, 2, 3]
    assert results[2].metrics == {"acc": 0.9}  # numbers only: text and booleans are not metrics
    assert results[1].problem.startswith("metrics.json: not valid JSON")
    assert results[3].problem == "metrics.json: must be a JSON object of metric names to numbers"
    assert results[0].params == {"lr": 0.3}


def test_missing_experiment_reads_as_no_runs(tmp_path):
    assert read_results(tmp_path, "nothing-here") == []


def test_ranking_by_objective_puts_runs_without_the_metric_last(tmp_path):
    write_run(tmp_path, 0, {}, {"loss": 0.5})
    write_run(tmp_path, 1, {}, {"loss": 0.2})
    write_run(tmp_path, 2, {}, {})
    write_run(tmp_path, 3, {}, {"loss": math.inf})
    write_run(tmp_path, 4, {}, {"loss": 0.2})
    results = read_results(tmp_path, "exp")
    assert [r.index for r in rank(results, Objective(metric="loss", goal="min"))] == [1, 4, 0, 2, 3]
    assert [r.index for r in rank(results, Objective(metric="loss", goal="max"))] == [0, 1, 4, 2, 3]
    assert [r.index for r in rank(results, None)] == [0, 1, 2, 3, 4]


def test_table_shows_rank_params_objective_and_states(tmp_path):
    write_run(tmp_path, 0, {"lr": 0.1, "depth": 2}, {"acc": 0.5, "loss": 1.0})
    write_run(tmp_path, 1, {"lr": 0.01, "depth": 4}, {"acc": 0.75, "loss": 0.5})
    write_run(tmp_path, 2, {"lr": 0.001, "depth": 8}, None)
    table = results_table(
        read_results(tmp_path, "exp"),
        Objective(metric="acc"),
        states={0: "succeeded", 1: "succeeded", 2: "failed"},
        title="exp",
    )
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(table)
    text = console.export_text()
    rows = [[cell.strip() for cell in line.split("│")[1:-1]] for line in text.splitlines() if "run-" in line]
    assert rows == [
        ["1", "run-00001", "succeeded", "0.01", "4", "0.75", "0.5"],
        ["2", "run-00000", "succeeded", "0.1", "2", "0.5", "1"],
        ["", "run-00002", "failed", "0.001", "8", "—", "—"],
    ]
    header = [cell.strip() for cell in text.splitlines()[2].split("┃")[1:-1]]
    assert header == ["#", "run", "state", "lr", "depth", "acc ↑", "loss"]


def test_a_metric_named_like_a_parameter_has_a_header_of_its_own(tmp_path):
    write_run(tmp_path, 0, {"epochs": 30, "hidden": 32}, {"val_accuracy": 0.95, "epochs": 30})
    table = results_table(read_results(tmp_path, "exp"), Objective(metric="val_accuracy"), title="exp")
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(table)
    header = [cell.strip() for cell in console.export_text().splitlines()[2].split("┃")[1:-1]]
    assert header == ["#", "run", "epochs", "hidden", "val_accuracy ↑", "epochs (metric)"]
