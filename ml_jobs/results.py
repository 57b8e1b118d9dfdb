"""Read runs' results from a results root, rank them by the experiment's objective, build the table.

Works on any directory laid out as ``layout`` says — a local ``--results-dir`` or the NFS results volume mounted
on a workstation or in a reader pod — and knows nothing about how the runs were executed: run states (from the
local backend or from Kubernetes) are passed in by the caller.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml_jobs import layout

if TYPE_CHECKING:
    from rich.table import Table

    from ml_jobs.spec import Objective

__all__ = ["RunResult", "format_number", "rank", "read_results", "read_run", "results_table"]


@dataclass(frozen=True)
class RunResult:
    """What one run left in its results directory.

    Attributes:
        index: the run's index in the sweep.
        run: the run's name (``run-00003``).
        path: its results directory.
        params: from ``params.json`` (empty if the run never started).
        metrics: the numeric entries of ``metrics.json`` (empty if it is missing).
        problem: why ``params.json`` or ``metrics.json`` could not be read, if one could not.
    """

    index: int
    run: str
    path: Path
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    problem: str | None = None

    def metric(self, name: str) -> float | None:
        """The value of metric ``name``, or ``None`` if the run did not report a finite number for it."""
        value = self.metrics.get(name)
        return value if value is not None and math.isfinite(value) else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (for ``--json`` outputs)."""
        return {
            "index": self.index,
            "run": self.run,
            "path": str(self.path),
            "params": self.params,
            "metrics": self.metrics,
            "problem": self.problem,
        }


def _read_json(path: Path) -> tuple[Any, str | None]:
    try:
        return json.loads(path.read_text(encoding="utf-8")), None
    except FileNotFoundError:
        return None, None
    except (OSError, UnicodeDecodeError) as e:
        return None, f"{path.name}: cannot read: {e}"
    except ValueError as e:
        return None, f"{path.name}: not valid JSON ({e})"


def read_run(run_path: Path, index: int) -> RunResult:
    """Read one run directory."""
    problems = []
    params, problem = _read_json(run_path / layout.PARAMS_FILE_NAME)
    if problem:
        problems.append(problem)
    raw, problem = _read_json(run_path / layout.METRICS_FILE_NAME)
    if problem:
        problems.append(problem)
    metrics: dict[str, float] = {}
    if raw is not None and not isinstance(raw, dict):
        problems.append(f"{layout.METRICS_FILE_NAME}: must be a JSON object of metric names to numbers")
    elif raw is not None:
        for key, value in raw.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                metrics[str(key)] = float(value)
    return RunResult(
        index=index,
        run=layout.run_name(index),
        path=run_path,
        params=params if isinstance(params, dict) else {},
        metrics=metrics,
        problem="; ".join(problems) or None,
    )


def read_results(root: str | Path, experiment_dir: str, indices: Iterable[int] | None = None) -> list[RunResult]:
    """Read the runs of one experiment under a results root, in index order.

    Args:
        root: the results root (``--results-dir`` locally, the NFS mount elsewhere).
        experiment_dir: the experiment's directory name (``layout.experiment_dir_name(name, revision)``).
        indices: the runs to read (default: every ``run-NNNNN`` directory present).
    """
    base = Path(root) / experiment_dir
    if indices is None:
        found = []
        if base.is_dir():
            for child in base.iterdir():
                index = layout.run_index(child.name)
                if index is not None and child.is_dir():
                    found.append(index)
        indices = sorted(found)
    return [read_run(base / layout.run_name(i), i) for i in indices]


def rank(results: Iterable[RunResult], objective: Objective | None) -> list[RunResult]:
    """Runs ordered best first by the objective; runs without the metric last, in index order."""
    runs = list(results)
    if objective is None:
        return sorted(runs, key=lambda r: r.index)
    sign = -1.0 if objective.goal == "max" else 1.0

    def key(r: RunResult) -> tuple[int, float, int]:
        value = r.metric(objective.metric)
        return (1, 0.0, r.index) if value is None else (0, sign * value, r.index)

    return sorted(runs, key=key)


def format_number(value: Any) -> str:
    """A metric or parameter as a table shows it."""
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def results_table(
    results: Iterable[RunResult],
    objective: Objective | None,
    *,
    states: Mapping[int, str] | None = None,
    title: str | None = None,
    limit: int | None = None,
    max_metrics: int = 4,
) -> Table:
    """A rich table of runs ranked by the objective: rank, run, state, parameters, objective, other metrics.

    Args:
        results: the runs (any order; they are ranked here).
        objective: ranks the runs; ``None`` keeps index order.
        states: run index -> state word (``succeeded``, ``failed``, ...) from the backend, if it knows them.
        title: the table's title.
        limit: show only the best ``limit`` runs.
        max_metrics: other metrics shown besides the objective (alphabetical).
    """
    from rich.table import Table

    ranked = rank(results, objective)
    shown = ranked if limit is None else ranked[:limit]
    param_names: list[str] = []
    metric_names: set[str] = set()
    for r in ranked:
        param_names.extend(name for name in r.params if name not in param_names)
        metric_names.update(r.metrics)
    main = objective.metric if objective else None
    others = sorted(metric_names - {main})[:max_metrics]

    caption = None
    if limit is not None and len(ranked) > limit:
        caption = f"best {limit} of {len(ranked)} runs"
    table = Table(title=title, caption=caption, header_style="bold")
    table.add_column("#", justify="right", style="dim")
    table.add_column("run")
    if states is not None:
        table.add_column("state")
    for name in param_names:
        table.add_column(name, justify="right")
    if main is not None:
        arrow = "↑" if objective and objective.goal == "max" else "↓"
        table.add_column(f"{main} {arrow}", justify="right", style="bold cyan")
    for name in others:
        table.add_column(name, justify="right")

    for position, r in enumerate(shown, start=1):
        has_main = main is not None and r.metric(main) is not None
        row = [str(position) if has_main or main is None else "", r.run]
        if states is not None:
            state = states.get(r.index, "")
            row.append(_STATE_STYLE.get(state, "{}").format(state))
        row.extend(format_number(r.params.get(name)) for name in param_names)
        if main is not None:
            row.append(format_number(r.metric(main)))
        row.extend(format_number(r.metric(name)) for name in others)
        table.add_row(*row)
    return table


_STATE_STYLE = {
    "succeeded": "[green]{}[/]",
    "failed": "[red]{}[/]",
    "running": "[yellow]{}[/]",
    "interrupted": "[magenta]{}[/]",
    "pending": "[dim]{}[/]",
}
