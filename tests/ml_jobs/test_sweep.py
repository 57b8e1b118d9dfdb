"""Sweeps: the renderer, the Python API and the in-pod entry shim agree on every run's parameters.

The shim under test is the copy the sweep ConfigMap carries (``entry.py`` + ``layout.py``), loaded from the
rendered object's data and also executed as a real process, exactly as a pod runs it.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from ml_jobs import layout
from ml_jobs.render import render
from ml_jobs.spec import Experiment

GRID = {"grid": {"lr": [0.1, 0.03, 0.01], "depth": [2, 4], "opt": ["sgd", "adam"]}}
RANDOM = {
    "random": {
        "seed": 7,
        "count": 500,
        "params": {
            "lr": {"loguniform": [1e-5, 1e-1]},
            "dropout": {"uniform": [0.0, 0.5]},
            "layers": {"randint": [1, 4]},
            "act": {"choice": ["relu", "gelu", "tanh"]},
        },
    }
}
LIST = {"list": [{"model": "small", "batch": 32}, {"model": "base", "batch": 16}, {"model": "large", "batch": 4}]}
PRODUCT = {
    "product": [
        LIST,
        {"grid": {"lr": [0.1, 0.01]}},
        {"random": {"seed": 1, "count": 3, "params": {"wd": {"uniform": [0, 1]}}}},
    ]
}
SWEEPS = {"grid": GRID, "random": RANDOM, "list": LIST, "product": PRODUCT}


def experiment(sweep: dict) -> Experiment:
    return Experiment(name="agree", image="python:3.11", command=["python", "train.py"], sweep=sweep)


@pytest.fixture
def shim_from_config_map(tmp_path, monkeypatch):
    """Write a rendered ConfigMap's files to a directory, as the pod's volume mount does; import its entry.py."""

    def load(exp: Experiment):
        data = render(exp, owner="test").config_map["data"]
        mount = tmp_path / "etc-ml-jobs"
        mount.mkdir(exist_ok=True)
        for key, text in data.items():
            (mount / key).write_text(text)
        monkeypatch.syspath_prepend(str(mount))
        monkeypatch.delitem(sys.modules, "layout", raising=False)
        spec = importlib.util.spec_from_file_location("entry_from_config_map", mount / layout.ENTRY_FILE)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        monkeypatch.delitem(sys.modules, "layout", raising=False)
        return module, json.loads(data[layout.SWEEP_FILE]), mount

    return load


@pytest.mark.parametrize("kind", SWEEPS)
def test_shim_and_renderer_agree_on_every_index(kind, shim_from_config_map):
    exp = experiment(SWEEPS[kind])
    shim, definition, _ = shim_from_config_map(exp)
    assert shim.__name__ == "entry_from_config_map"  # the ConfigMap's copy, not ml_jobs._shim
    assert shim.size(definition["sweep"]) == exp.runs == render(exp).job["spec"]["completions"]
    expanded = exp.sweep.expand()
    for index in range(exp.runs):
        assert shim.params(definition["sweep"], index) == exp.sweep.params(index) == expanded[index]


def run_shim(mount: Path, index: int, root: Path, failures: str = "", command: list[str] | None = None):
    probe = "import json, os; print(json.dumps({k: v for k, v in os.environ.items()}))"
    env = {
        **os.environ,
        layout.ENV_JOB_COMPLETION_INDEX: str(index),
        layout.ENV_RESULTS_ROOT: str(root),
        layout.ENV_FAILURE_COUNT: failures,
    }
    return subprocess.run(
        [sys.executable, str(mount / layout.ENTRY_FILE), "--", *(command or [sys.executable, "-c", probe])],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("kind", ["grid", "list", "product", "random"])
def test_shim_process_sees_the_environment_contract(kind, shim_from_config_map, tmp_path):
    exp = experiment(SWEEPS[kind])
    _, _, mount = shim_from_config_map(exp)
    root = tmp_path / "results"
    indices = range(exp.runs) if exp.runs <= 20 else [0, 1, 250, exp.runs - 1]
    for index in indices:
        done = run_shim(mount, index, root)
        assert done.returncode == 0, done.stderr
        env = json.loads(done.stdout)
        params = exp.sweep.params(index)
        run_dir = root / "agree" / layout.run_name(index)
        assert env[layout.ENV_INDEX] == str(index)
        assert env[layout.ENV_RUN_NAME] == layout.run_name(index)
        assert env[layout.ENV_EXPERIMENT] == "agree"
        assert env[layout.ENV_ATTEMPT] == "1"
        assert env[layout.ENV_RESULTS_DIR] == str(run_dir)
        assert env[layout.ENV_CHECKPOINT_DIR] == str(run_dir / "checkpoint")
        assert env[layout.ENV_METRICS_FILE] == str(run_dir / "metrics.json")
        assert json.loads(Path(env[layout.ENV_PARAMS_FILE]).read_text()) == params
        for name, value in params.items():
            assert env[layout.param_env_name(name)] == (value if isinstance(value, str) else json.dumps(value))
        assert (run_dir / "checkpoint").is_dir()
        run = json.loads((run_dir / layout.RUN_FILE_NAME).read_text())
        assert run["index"] == index and run["params"] == params and run["attempt"] == 1


def test_retries_keep_the_checkpoint_dir_and_count_attempts(shim_from_config_map, tmp_path):
    _, _, mount = shim_from_config_map(experiment(GRID))
    first = json.loads(run_shim(mount, 3, tmp_path, failures="0").stdout)
    third = json.loads(run_shim(mount, 3, tmp_path, failures="2").stdout)
    assert first[layout.ENV_CHECKPOINT_DIR] == third[layout.ENV_CHECKPOINT_DIR]
    assert (first[layout.ENV_ATTEMPT], third[layout.ENV_ATTEMPT]) == ("1", "3")


def test_shim_substitutes_parameters_into_the_command(shim_from_config_map, tmp_path):
    exp = Experiment(
        name="agree", image="python:3.11", command=["python", "t.py", "--lr={{ lr }}", "{{opt}}"], sweep=GRID
    )
    _, _, mount = shim_from_config_map(exp)
    probe = "import sys; print(' '.join(sys.argv[1:]))"
    done = run_shim(
        mount, 5, tmp_path, command=[sys.executable, "-c", probe, "--lr={{ lr }}", "{{opt}}", "{{ depth }}"]
    )
    # index 5 = lr[1], depth[0], opt[1] (the last axis varies fastest)
    assert done.stdout.split() == ["--lr=0.03", "adam", "2"]


@pytest.mark.parametrize(
    "case",
    [
        ("", None, 2, "ml-jobs entry: JOB_COMPLETION_INDEX must be a run index, got ''"),
        ("12", None, 2, "ml-jobs entry: run index 12 outside the sweep's 0..11"),
        ("0", ["no-such-command-xyz"], 127, "ml-jobs entry: command not found: no-such-command-xyz"),
        (
            "0",
            ["echo", "{{ nope }}"],
            2,
            "ml-jobs entry: the command refers to {{ nope }}, which is not a parameter",
        ),
    ],
)
def test_shim_errors_are_one_line_and_exit_non_zero(shim_from_config_map, tmp_path, case):
    index, command, code, message = case
    _, _, mount = shim_from_config_map(experiment(GRID))
    env = {**os.environ, layout.ENV_JOB_COMPLETION_INDEX: index, layout.ENV_RESULTS_ROOT: str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(mount / layout.ENTRY_FILE), "--", *(command or ["true"])],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == code
    assert done.stderr.startswith(message)
    assert done.stderr.count("\n") == 1


def test_grid_enumerates_like_itertools_product():
    exp = experiment(GRID)
    axes = GRID["grid"]
    expected = [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]
    assert exp.sweep.expand() == expected


def test_product_is_the_mixed_radix_product_of_its_factors():
    exp = experiment(PRODUCT)
    factors = [experiment(f).sweep.expand() for f in PRODUCT["product"]]
    expected = [{**a, **b, **c} for a, b, c in itertools.product(*factors)]
    assert exp.runs == 3 * 2 * 3
    assert exp.sweep.expand() == expected


def test_random_draws_are_in_range_and_spread():
    runs = experiment(RANDOM).sweep.expand()
    lrs = [r["lr"] for r in runs]
    assert all(1e-5 <= lr <= 1e-1 for lr in lrs)
    # log-uniform: the median is near the geometric mean of the bounds (1e-3), not the arithmetic one.
    assert 10**-3.5 < statistics.median(lrs) < 10**-2.5
    assert all(0.0 <= r["dropout"] <= 0.5 for r in runs)
    assert abs(statistics.mean(r["dropout"] for r in runs) - 0.25) < 0.03
    assert {r["layers"] for r in runs} == {1, 2, 3, 4}
    assert {r["act"] for r in runs} == {"relu", "gelu", "tanh"}
    assert len({(r["lr"], r["dropout"]) for r in runs}) == len(runs)


def test_random_draws_are_pinned_across_versions_and_depend_on_the_seed():
    # Hash-derived, so these exact values hold on every Python and platform; a change here is a breaking change.
    exp = experiment(
        {"random": {"seed": 0, "count": 3, "params": {"x": {"uniform": [0, 1]}, "k": {"randint": [0, 9]}}}}
    )
    assert exp.sweep.expand() == PINNED
    other = experiment(
        {"random": {"seed": 1, "count": 3, "params": {"x": {"uniform": [0, 1]}, "k": {"randint": [0, 9]}}}}
    )
    assert other.sweep.expand() != PINNED


def test_params_of_a_late_index_cost_no_more_than_an_early_one():
    # Constant time per index: run 99,999 of a 100,000-run sweep is computed without drawing the others.
    exp = experiment({"random": {"seed": 3, "count": 100_000, "params": {"lr": {"loguniform": [1e-5, 1]}}}})
    assert math.isfinite(exp.sweep.params(99_999)["lr"])
    with pytest.raises(IndexError):
        exp.sweep.params(100_000)


PINNED = [{"x": 0.963599, "k": 0}, {"x": 0.512339, "k": 9}, {"x": 0.930925, "k": 8}]


SHIPPED = [Path(layout.__file__), Path(layout.__file__).with_name("_shim.py")]
NEWER_THAN_38 = {"removeprefix", "removesuffix", "cache", "pairwise", "bit_count", "is_relative_to", "readlink"}


@pytest.mark.parametrize("path", SHIPPED, ids=[p.name for p in SHIPPED])
def test_the_files_shipped_into_pods_use_python_38_and_the_standard_library_only(path):
    # The image's interpreter may be older than ours; only 3.11 runs here, so check what can be checked statically.
    import ast

    source = path.read_text()
    tree = ast.parse(source, feature_version=(3, 8))
    assert "from __future__ import annotations" in source  # `X | None` annotations stay unevaluated
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute | ast.Name):
            assert getattr(node, "attr", getattr(node, "id", None)) not in NEWER_THAN_38, ast.unparse(node)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "zip":
            assert not any(k.arg == "strict" for k in node.keywords), ast.unparse(node)
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [node.module] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
            for name in names:
                top = (name or "").split(".")[0]
                assert top in sys.stdlib_module_names or top in {"layout", "ml_jobs"}, name
                if top == "ml_jobs":
                    assert name == "ml_jobs" and [a.name for a in node.names] == ["layout"]
