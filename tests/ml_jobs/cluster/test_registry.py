"""The registry's runs table: what fits in one ConfigMap, and what is dropped first when it does not."""

from __future__ import annotations

import base64
import gzip
import json
import random

from ml_jobs.kube import registry
from ml_jobs.spec import load_spec
from tests.conftest import REPO


def _rows(n: int) -> list[dict]:
    rng = random.Random(3)
    return [
        {
            "index": i,
            "params": {"lr": round(rng.uniform(1e-5, 1e-2), 8), "batch": rng.choice([16, 32, 64])},
            "state": rng.choice(["succeeded"] * 9 + ["failed"]),
            "node": f"gpu-node-{rng.randrange(40):02d}",
            "exitCode": 0,
            "attempts": rng.choice([1, 1, 1, 2]),
            "metrics": {"accuracy": rng.random(), "loss": rng.random()},
        }
        for i in range(n)
    ]


def _decode(blob: str) -> registry.Record:
    return registry.Record("x", [], None, {}, {registry.runs_key(1): blob})


def test_ten_thousand_finished_runs_keep_every_column() -> None:
    rows = _rows(10_000)
    blob = registry.encode_runs(rows)
    assert len(blob) <= registry.MAX_RUNS_BYTES
    assert _decode(blob).runs(1) == rows


def test_a_hundred_thousand_runs_drop_parameters_then_metrics_but_keep_where_and_how_each_ended() -> None:
    rows = _rows(100_000)
    blob = registry.encode_runs(rows)
    decoded = _decode(blob).runs(1)
    assert len(blob) <= registry.MAX_RUNS_BYTES
    assert [r["params"] for r in decoded[:3]] == [None, None, None]
    assert [(r["state"], r["node"], r["exitCode"], r["attempts"]) for r in decoded] == [
        (r["state"], r["node"], r["exitCode"], r["attempts"]) for r in rows
    ]


def test_parameters_are_derived_from_the_recorded_spec_not_stored_per_run() -> None:
    # GIVEN the example sweep's spec as submit records it, and a runs table recorded at its end (no parameters)
    exp = load_spec(REPO / "examples" / "digits-sweep.yaml")
    rows = [{k: v for k, v in row.items() if k != "params"} for row in _rows(exp.sweep.size())]
    blob = registry.encode_runs(rows)
    record = registry.Record("digits-sweep", [], None, {registry.spec_key(1): json.dumps(exp.to_dict())}, {})
    # THEN before the end there is no table, and each run's parameters are the ones its pod derives
    assert record.runs(1) == []
    params_of = record.params_of(1)
    assert [params_of(i) for i in range(exp.sweep.size())] == [
        exp.sweep.params(i) for i in range(exp.sweep.size())
    ]
    # AND the table stores no parameters column (null on read), so it does not grow with what the spec says
    columns = json.loads(gzip.decompress(base64.b64decode(blob)))["columns"]
    assert "params" not in columns
    ended = registry.Record("digits-sweep", [], None, record.data, {registry.runs_key(1): blob})
    assert [r["params"] for r in ended.runs(1)] == [None] * exp.sweep.size()
    assert ended.params_of(1)(5) == exp.sweep.params(5)
