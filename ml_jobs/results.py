"""Read runs' results from a results root, rank them by the experiment's objective: table, CSV, plot.

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
from typing import TYPE_CHECKING, Any, TextIO

from ml_jobs import layout
from ml_jobs.errors import ResultsError

if TYPE_CHECKING:
    from rich.table import Table

    from ml_jobs._tables import Column
    from ml_jobs.spec import Objective

__all__ = [
    "ExperimentResults",
    "RunResult",
    "format_number",
    "plot",
    "rank",
    "read_results",
    "read_run",
    "results_rows",
    "results_table",
    "to_csv",
]


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
    return [read_run(Path(layout.run_dir(base, i)), i) for i in indices]


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


def results_rows(
    results: Iterable[RunResult],
    objective: Objective | None,
    *,
    states: Mapping[int, str] | None = None,
    limit: int | None = None,
    max_metrics: int = 4,
) -> tuple[list[Column], list[tuple[str, list[str]]]]:
    """The ranked table as plain cells: (columns, [(state, cells), ...] best first).

    Columns: rank, run, state (when ``states`` is given), each parameter, the objective, up to ``max_metrics``
    other metrics (alphabetical; ``<name> (metric)`` where a parameter has the name). Runs without the objective's
    metric come last, unranked.
    """
    from ml_jobs._tables import Column

    ranked = rank(results, objective)
    shown = ranked if limit is None else ranked[:limit]
    param_names: list[str] = []
    metric_names: set[str] = set()
    for r in ranked:
        param_names.extend(name for name in r.params if name not in param_names)
        metric_names.update(r.metrics)
    main = objective.metric if objective else None
    others = sorted(metric_names - {main})[:max_metrics]

    columns = [Column("#", right=True), Column("run")]
    if states is not None:
        columns.append(Column("state"))
    columns += [Column(name, right=True) for name in param_names]
    if objective is not None:
        columns.append(Column(_objective_header(objective), right=True))
    # A metric named like a parameter (a script reporting the epochs it ran) gets a header of its own.
    columns += [Column(f"{name} (metric)" if name in param_names else name, right=True) for name in others]

    rows = []
    for position, r in enumerate(shown, start=1):
        has_main = main is not None and r.metric(main) is not None
        state = states.get(r.index, "") if states is not None else ""
        cells = [str(position) if has_main or main is None else "", r.run]
        if states is not None:
            cells.append(state)
        cells.extend(format_number(r.params.get(name)) for name in param_names)
        if main is not None:
            cells.append(format_number(r.metric(main)))
        cells.extend(format_number(r.metric(name)) for name in others)
        rows.append((state, cells))
    return columns, rows


def _objective_header(objective: Objective) -> str:
    return f"{objective.metric} {'↑' if objective.goal == 'max' else '↓'}"


def results_table(
    results: Iterable[RunResult],
    objective: Objective | None,
    *,
    states: Mapping[int, str] | None = None,
    title: str | None = None,
    limit: int | None = None,
    max_metrics: int = 4,
) -> Table:
    """A rich table of runs ranked by the objective (the cells of :func:`results_rows`, with colour).

    Args:
        results: the runs (any order; they are ranked here).
        objective: ranks the runs; ``None`` keeps index order.
        states: run index -> state word (``succeeded``, ``failed``, ...) from the backend, if it knows them.
        title: the table's title.
        limit: show only the best ``limit`` runs.
        max_metrics: other metrics shown besides the objective (alphabetical).
    """
    from rich.table import Table

    from ml_jobs._tables import styled

    results = list(results)
    columns, rows = results_rows(results, objective, states=states, limit=limit, max_metrics=max_metrics)
    caption = f"best {limit} of {len(results)} runs" if limit is not None and len(results) > limit else None
    table = Table(title=title, caption=caption, header_style="bold")
    main = _objective_header(objective) if objective is not None else None
    for i, column in enumerate(columns):
        style = "dim" if i == 0 else "bold cyan" if column.header == main else None
        table.add_column(column.header, justify="right" if column.right else "left", style=style)
    state_column = 2 if states is not None else None
    for state, cells in rows:
        if state_column is not None:  # the cells are ours: colour the state in place
            cells[state_column] = styled(state)
        table.add_row(*cells)
    return table


@dataclass
class ExperimentResults:
    """Every run of one revision with its parameters, metrics and (where recorded) state."""

    experiment: str
    revision: int
    objective: Any  # ml_jobs.spec.Objective or None
    runs: list[RunResult]
    source: str  # "local <dir>", "mounted <path>", "reader pod <name> (claim <claim>)"
    params: list[str] = field(default_factory=list)
    states: dict[int, str] = field(default_factory=dict)

    def ranked(self) -> list[RunResult]:
        """Best first by the objective; runs without the metric last."""
        return rank(self.runs, self.objective)

    @property
    def title(self) -> str:
        """``digits-sweep r1 — local runs/digits-sweep``."""
        return f"{self.experiment} r{self.revision} — {self.source}"

    def table(self, *, limit: int | None = None) -> Table:
        """The ranked rich table (:func:`results_table`)."""
        return results_table(self.runs, self.objective, states=self.states or None, title=self.title, limit=limit)

    def write_plain(self, out: TextIO, *, limit: int | None = None) -> None:
        """The ranked table as plain aligned text, row by row (for many runs; see ``ml_jobs._tables``)."""
        from ml_jobs._tables import write_plain

        columns, rows = results_rows(self.runs, self.objective, states=self.states or None, limit=limit)
        write_plain(columns, (cells for _, cells in rows), out)


def to_csv(results: ExperimentResults, *, limit: int | None = None) -> str:
    """The ranked runs as CSV (the best ``limit``): rank, run, index, state, each parameter, each metric."""
    import csv
    import io

    ranked = results.ranked()[:limit]
    params = results.params or sorted({k for r in ranked for k in r.params})
    metrics = sorted({k for r in ranked for k in r.metrics})
    main = results.objective.metric if results.objective is not None else None
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["rank", "run", "index", "state", *params, *metrics])
    for position, r in enumerate(ranked, 1):
        ranked_here = main is None or r.metric(main) is not None
        w.writerow(
            [position if ranked_here else "", r.run, r.index, results.states.get(r.index, "")]
            + [r.params.get(p, "") for p in params]
            + [r.metrics.get(m, "") for m in metrics]
        )
    return buf.getvalue()


def plot(results: ExperimentResults, path: Path) -> Path:
    """A PNG of the objective metric against each swept parameter (one panel per parameter, best run starred)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if results.objective is None:
        raise ResultsError(f"{results.experiment!r} has no objective metric to plot")
    metric, goal = results.objective.metric, results.objective.goal
    params = results.params or sorted({k for r in results.runs for k in r.params})
    points = [r for r in results.runs if r.metric(metric) is not None]
    if not points:
        raise ResultsError(f"no run of {results.experiment!r} reported {metric!r}; nothing to plot")
    if not params:
        raise ResultsError(f"{results.experiment!r} sweeps no parameters; nothing to plot {metric!r} against")
    best = results.ranked()[0]
    fig, axes = plt.subplots(1, len(params), figsize=(4.2 * len(params), 3.6), squeeze=False, sharey=True)
    for ax, p in zip(axes[0], params, strict=True):
        xs = [r.params.get(p) for r in points]
        ys = [r.metric(metric) for r in points]
        numbers = [float(x) for x in xs if isinstance(x, int | float) and not isinstance(x, bool)]
        if len(numbers) == len(xs):
            ax.scatter(numbers, ys, s=18, alpha=0.75)
            if min(numbers) > 0 and max(numbers) / min(numbers) >= 10:
                ax.set_xscale("log")
            ax.scatter([best.params.get(p)], [best.metric(metric)], s=90, marker="*", color="crimson", zorder=3)
        else:
            cats = sorted({str(x) for x in xs})
            pos = {c: i for i, c in enumerate(cats)}
            ax.scatter([pos[str(x)] for x in xs], ys, s=18, alpha=0.75)
            ax.scatter([pos[str(best.params.get(p))]], [best.metric(metric)], s=90, marker="*", color="crimson")
            ax.set_xticks(range(len(cats)), cats, rotation=30, ha="right")
        ax.set_xlabel(p)
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel(f"{metric} ({goal})")
    fig.suptitle(f"{results.experiment} r{results.revision}: {metric} by parameter ({len(points)} runs)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
