"""``ml-jobs`` commands that need no cluster: validate, sweep, render, run --local.

Heavy modules (pydantic, rich tables, kubernetes-validate) are imported inside the commands, so that
``ml-jobs --help`` stays instant.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ml_jobs import layout
from ml_jobs.errors import HerdError

if TYPE_CHECKING:
    from ml_jobs._tables import Column
    from ml_jobs.spec import Experiment

SpecArg = Annotated[Path, typer.Argument(help="The experiment spec (YAML).", show_default=False)]
EXIT_RUNS_FAILED = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("validate")(validate)
    app.command("sweep")(sweep)
    app.command("render")(render)
    app.command("run")(run)


def validate(spec: SpecArg) -> None:
    """Check a spec, and the objects it renders to against Kubernetes 1.33-1.37; print a one-line summary."""
    from ml_jobs.render import KUBERNETES_VERSIONS, render, validate_schema
    from ml_jobs.spec import load_spec

    exp = load_spec(spec)
    rendered = render(exp)
    validate_schema(rendered.objects)
    print(
        f"{spec}: valid: {exp.name}, {exp.runs} run(s), spec hash {exp.spec_hash()}; "
        f"{len(rendered.objects)} objects pass Kubernetes {KUBERNETES_VERSIONS[0]}-{KUBERNETES_VERSIONS[-1]} "
        "schemas"
    )


def sweep(
    spec: SpecArg,
    index: Annotated[int | None, typer.Option("--index", "-i", help="Show only this run.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per run, one per line.")] = False,
    show_all: Annotated[
        bool, typer.Option("--all", "-a", help="List every run of a large sweep (a plain table, streamed).")
    ] = False,
) -> None:
    """List the runs of a spec's sweep with their parameters (what each pod will compute from its index).

    Up to 50 runs: one table. More: on a terminal the first and last 10 runs and how many are left out; with
    --all, or piped, a plain table of every run, written as it is computed.
    """
    import json

    from rich.console import Console

    from ml_jobs import _tables
    from ml_jobs.spec import load_spec

    exp = load_spec(spec)
    if index is not None and not 0 <= index < exp.runs:
        raise HerdError(f"{spec}: --index {index}: the sweep has runs 0..{exp.runs - 1}")
    indices = range(exp.runs) if index is None else range(index, index + 1)
    if as_json:
        for i in indices:
            print(json.dumps({"index": i, "run": layout.run_name(i), "params": exp.sweep.params(i)}))
        return
    columns, row = sweep_table(exp)
    console = Console()
    form = _tables.form(len(indices), terminal=console.is_terminal, show_all=show_all)
    if form == "plain":
        _tables.write_plain(columns, (row(i) for i in indices), sys.stdout)
        return
    head, tail = _tables.head_and_tail(len(indices)) if form == "short" else (range(len(indices)), range(0))
    left_out = len(indices) - len(head) - len(tail)
    from rich.table import Table

    table = Table(title=f"{exp.name}: {exp.runs:,} run(s)", header_style="bold")
    for column in columns:
        table.add_column(column.header, justify="right" if column.right else "left")
    for i in head:
        table.add_row(*row(indices[i]))
    if tail:
        table.add_row(*(["…"] * len(columns)), style="dim")
    for i in tail:
        table.add_row(*row(indices[i]))
    console.print(table)
    if left_out:
        console.print(f"{left_out:,} runs not shown (--all: every run)", style="dim", highlight=False)


def sweep_table(exp: Experiment) -> tuple[list[Column], Callable[[int], list[str]]]:
    """The columns of the sweep's table, and the function that gives run ``i``'s row (its parameters)."""
    from ml_jobs import _shim
    from ml_jobs._tables import Column

    names = exp.sweep.names()
    definition = exp.sweep.definition()  # once, not once per run

    def row(i: int) -> list[str]:
        params = _shim.params(definition, i)
        return [layout.run_name(i), *(str(params[n]) for n in names)]

    return [Column("run"), *(Column(name, right=True) for name in names)], row


def render(
    spec: SpecArg,
    *,
    namespace: Annotated[str | None, typer.Option("--namespace", "-n", help="Set metadata.namespace.")] = None,
    owner: Annotated[str | None, typer.Option(help="Owner label (default: your login name).")] = None,
    revision: Annotated[int, typer.Option(min=1, help="Render revision N (Job <name>-r<N>).")] = 1,
    queue: Annotated[
        str | None,
        typer.Option(help="The team queue (Kueue LocalQueue) when the spec names none, as submit finds it."),
    ] = None,
    check_schema: Annotated[
        bool, typer.Option("--validate/--no-validate", help="Check against Kubernetes 1.33-1.37 schemas.")
    ] = True,
) -> None:
    """Print the Kubernetes objects of a spec as YAML, like `kubectl create --dry-run=client -o yaml`."""
    from ml_jobs.render import render as render_spec
    from ml_jobs.render import validate_schema
    from ml_jobs.spec import load_spec

    rendered = render_spec(load_spec(spec), namespace=namespace, owner=owner, revision=revision, queue=queue)
    if check_schema:
        validate_schema(rendered.objects)
    sys.stdout.write(rendered.to_yaml())


def run(
    spec: SpecArg,
    *,
    local: Annotated[bool, typer.Option("--local", help="Run here, as local processes.")] = False,
    results_dir: Annotated[
        Path, typer.Option("--results-dir", "-o", help="Results root on this machine (stands in for the volume).")
    ] = Path(layout.LOCAL_RESULTS_DIR),
    parallelism: Annotated[
        int | None, typer.Option("--parallelism", "-p", min=1, help="At most this many runs at once.")
    ] = None,
    ignore_gpus: Annotated[
        bool, typer.Option("--ignore-gpus", help="Run GPU runs without GPUs (a smoke test of the code path).")
    ] = False,
    grace: Annotated[float, typer.Option(help="Seconds runs get to exit after Ctrl-C before SIGKILL.")] = 10.0,
    top: Annotated[int | None, typer.Option(help="Show only the best N runs in the final table.")] = None,
) -> None:
    """Run a sweep on this machine: bounded by the declared resources, retried like the cluster, resumable.

    Per run: <results-dir>/<experiment>/run-NNNNN/ holds params.json, metrics.json, what the run wrote, and
    logs/attempt-N.log. Running the same spec again keeps the runs that succeeded. Exit status: 0 when every
    run succeeded, 1 when some failed, 130 when stopped by Ctrl-C.
    """
    if not local:
        raise HerdError("ml-jobs run: add --local to run here; `ml-jobs submit SPEC` sends a sweep to the cluster")
    from rich.console import Console

    from ml_jobs.local import SUCCEEDED, run_local
    from ml_jobs.results import results_table
    from ml_jobs.spec import load_spec

    exp = load_spec(spec)
    console = Console()
    if not console.is_terminal:  # logs and CI: rich would assume 80 columns and squeeze the table
        console.width = max(console.width, 140)
    report = run_local(
        exp,
        results_dir=results_dir,
        parallelism=parallelism,
        ignore_gpus=ignore_gpus,
        grace_seconds=grace,
        console=console,
    )
    states = {i: r.state for i, r in report.runs.items()}
    table = results_table(report.results, exp.objective, states=states, title=f"{exp.name}: ranked", limit=top)
    console.print(table)
    succeeded = sum(1 for r in report.runs.values() if r.state == SUCCEEDED)
    where = report.plan.experiment_dir
    line = f"{succeeded} succeeded, {len(report.failed)} failed of {exp.runs} in {report.seconds:.1f}s → {where}/"
    if report.interrupted:
        line += f" — stopped ({report.stopped_by}); run the same command again to resume"
    console.print(line, highlight=False, soft_wrap=True)
    for index in report.failed[:5]:
        attempts = report.runs[index].attempts
        log = layout.attempt_log(layout.run_dir(where, index), attempts)
        console.print(f"[red]✗[/] log: {log}", highlight=False, soft_wrap=True)
    if exp.objective is not None and exp.sweep.names():
        console.print(
            f"{exp.objective.metric} by parameter, as a plot: "
            f"{results_command(exp.name, results_dir, report.plan.revision)} --plot {exp.name}.png",
            highlight=False,
            soft_wrap=True,
        )
    if report.stopped_by in ("SIGINT", "SIGTERM"):
        raise typer.Exit(EXIT_INTERRUPTED if report.stopped_by == "SIGINT" else EXIT_TERMINATED)
    if not report.ok:
        raise typer.Exit(EXIT_RUNS_FAILED)


def results_command(experiment: str, results_dir: Path, revision: int) -> str:
    """The `ml-jobs results` command that shows these local runs again (ranked; --csv, --plot, --limit)."""
    from ml_jobs.local import local_revisions

    command = f"ml-jobs results {experiment} --local"
    if results_dir != Path(layout.LOCAL_RESULTS_DIR):
        command += f" -o {results_dir}"
    if revision != max(local_revisions(results_dir, experiment), default=revision):
        command += f" --revision {revision}"  # an earlier spec ran again: not the latest revision
    return command
