"""``ml-jobs`` commands: cluster (submit, status, logs, cancel, ls, results — which also reads local runs).

The cluster is chosen the way kubectl chooses it: ``--kubeconfig`` / ``$KUBECONFIG`` / ``~/.kube/config``, its
current context or ``--context``, the context's namespace or ``--namespace``; inside a pod, the service account.
The ``kubernetes`` client and ``ml_jobs.kube`` are imported inside the commands so ``ml-jobs --help`` stays
instant.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ml_jobs.errors import HerdError

if TYPE_CHECKING:
    from rich.console import Console

    from ml_jobs._tables import Column
    from ml_jobs.kube import Api, SweepStatus
    from ml_jobs.results import ExperimentResults

Context = Annotated[
    str | None, typer.Option("--context", help="kubeconfig context to use (default: its current context).")
]
Namespace = Annotated[
    str | None, typer.Option("--namespace", "-n", help="namespace (default: the context's, else 'default').")
]
Kubeconfig = Annotated[
    str | None,
    typer.Option(
        "--kubeconfig", help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config).", metavar="PATH"
    ),
]
Revision = Annotated[int | None, typer.Option("--revision", "-r", help="revision (default: the latest).")]
ResultsPath = Annotated[
    str | None,
    typer.Option(
        "--results-path",
        help="where the results volume is mounted on this machine (default: $ML_JOBS_RESULTS_PATH).",
        metavar="PATH",
    ),
]

STATUS_ROWS = 30  # runs listed by `status` without --all
RESULTS_ROWS = 20  # the best runs `results` shows of a large sweep on a terminal
_ORDER = {"running": 0, "retrying": 1, "failed": 2, "pending": 3, "cancelled": 4, "succeeded": 5}


def _console() -> Console:
    from rich.console import Console

    return Console(highlight=False)


def _connect(kubeconfig: str | None, context: str | None, namespace: str | None) -> Api:
    from ml_jobs.kube import connect

    return connect(kubeconfig=kubeconfig, context=context, namespace=namespace)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def _counts_text(counts: dict[str, int]) -> str:
    from ml_jobs.kube.status import STATES

    ordered = [s for s in STATES if counts.get(s)] + sorted(set(counts) - set(STATES))
    from ml_jobs._tables import styled

    return ", ".join(styled(s, f"{counts[s]} {s}") for s in ordered) or "no runs"


def _results_root(results_path: str | None) -> str | None:
    from ml_jobs.kube.results import mounted_root

    return mounted_root(results_path)


_STATUS_COLUMNS = ["run", "state", "attempts:r", "node", "duration:r", "exit:r"]


def _status_rows(status: SweepStatus, *, limit: int | None) -> tuple[list[Column], list[list[str]], int]:
    """The table of runs as plain cells: (columns, rows in index order, runs left out by ``limit``).

    With a limit, the runs that need a look come first (running, retrying, failed, pending, ...), then by index.
    """
    from ml_jobs import layout
    from ml_jobs._tables import Column
    from ml_jobs.results import format_number

    now = dt.datetime.now(dt.UTC)
    metric = (status.objective or {}).get("metric")
    known = {r.index: (r.metrics or {}).get(metric) for r in status.runs} if metric else {}
    if not any(v is not None for v in known.values()):
        metric = None  # no run has finished with metrics yet (termination messages, or --results-path)
    columns = [Column(c.split(":")[0], right=c.endswith(":r")) for c in _STATUS_COLUMNS]
    if metric:
        columns.append(Column(metric, right=True))
    runs = status.runs
    if limit is not None and len(runs) > limit:
        runs = sorted(runs, key=lambda r: (_ORDER.get(r.state, 9), r.index))[:limit]
    rows = []
    for r in sorted(runs, key=lambda r: r.index):
        exit_text = "" if r.exit_code is None else str(r.exit_code)
        if r.reason and r.reason not in {"Completed", "Error"}:
            exit_text = f"{exit_text} {r.reason}".strip()
        row = [
            layout.run_name(r.index),
            r.state,
            str(r.attempts or ""),
            r.node or "",
            _duration(r.duration(now)),
            exit_text,
        ]
        if metric:
            row.append(format_number(known.get(r.index)))
        rows.append(row)
    return columns, rows, len(status.runs) - len(rows)


def _status_head(status: SweepStatus) -> list[Any]:
    """What stands above the table: the sweep, its runs counted by state, and why runs are pending."""
    from rich.text import Text

    head = Text.from_markup(
        f"[bold]{status.experiment}[/] revision {status.revision} · Job {status.job}"
        f" · namespace {status.namespace} · {status.job_state}\n"
        f"{len(status.runs)} run{'' if len(status.runs) == 1 else 's'}: {_counts_text(status.counts)}"
    )
    parts: list[Any] = [head]
    if status.queue is not None and [c.text for c in status.causes] != [status.queue.line]:  # said once
        parts.append(Text(f"queue: {status.queue.line}"))
    if status.causes:
        # Lines of text, not a rich grid: a grid pads every cell to its column's width, which left trailing spaces
        # on every cause shorter than the longest.
        counts = [f"{c.runs} {'run' if c.runs == 1 else 'runs'}" for c in status.causes]
        width = max(map(len, counts))
        why = Text()
        for i, (count, cause) in enumerate(zip(counts, status.causes, strict=True)):
            why.append("\n" if i else "")
            why.append(count.rjust(width), style="bold")
            why.append(f" {cause.text}")
        parts += [Text("why pending:", style="bold"), why]
    return parts


def _status_view(status: SweepStatus, *, limit: int | None) -> Any:
    """The status as one rich renderable: what `status` prints, and what `--watch` keeps redrawing."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from ml_jobs._tables import styled

    columns, rows, left_out = _status_rows(status, limit=limit)
    table = Table(header_style="bold", box=None, pad_edge=False)
    for column in columns:
        table.add_column(column.header, justify="right" if column.right else "left")
    for row in rows:
        state = row[1]
        table.add_row(row[0], styled(state), *row[2:])
    parts = [*_status_head(status), table]
    if left_out:
        parts.append(Text(f"… {left_out} more runs (--all to list every run)", style="dim"))
    return Group(*parts)


def _print_status(console: Console, status: SweepStatus, *, show_all: bool) -> None:
    """Print the status once: 30 runs by default; with --all every run — beyond a screenful as a plain table,
    written row by row (a rich table of 10,000 runs takes seconds to lay out)."""
    from ml_jobs import _tables

    if not show_all or len(status.runs) <= _tables.SHORT_ROWS:
        console.print(_status_view(status, limit=None if show_all else STATUS_ROWS))
        return
    for part in _status_head(status):
        console.print(part)
    columns, rows, _ = _status_rows(status, limit=None)
    console.file.flush()
    _tables.write_plain(columns, rows, sys.stdout)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("submit")(submit)
    app.command("status")(status)
    app.command("logs")(logs)
    app.command("cancel")(cancel)
    app.command("ls")(list_)
    app.command("results")(results)


def submit(
    spec: Annotated[Path, typer.Argument(help="the experiment spec (YAML).", metavar="SPEC")],
    *,
    new_revision: Annotated[
        bool,
        typer.Option("--new-revision", help="submit a changed spec under an existing name as its next revision."),
    ] = False,
    context: Context = None,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
) -> None:
    """Submit the sweep to the cluster: one ConfigMap and one Indexed Job, recorded in the registry.

    Submitting the same spec again creates nothing and says so; a changed spec under an existing name is
    refused unless --new-revision is given.
    """
    from ml_jobs.kube import check
    from ml_jobs.kube import submit as do_submit
    from ml_jobs.spec import load_spec

    exp = load_spec(spec)
    check(exp)  # what the spec alone refuses, before the kubeconfig is read or a request is sent
    with _connect(kubeconfig, context, namespace) as api:
        result = do_submit(api, exp, new_revision=new_revision)
    console = _console()
    console.print(result.message, soft_wrap=True)
    if result.created:
        console.print(f"watch it:  ml-jobs status {result.experiment} -n {result.namespace} --watch")


def status(
    experiment: Annotated[str, typer.Argument(help="experiment name.")],
    *,
    revision: Revision = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="keep updating until the sweep ends.")] = False,
    interval: Annotated[float, typer.Option(help="seconds between updates with --watch.")] = 2.0,
    show_all: Annotated[bool, typer.Option("--all", "-a", help="list every run (default: 30).")] = False,
    results_path: ResultsPath = None,
    context: Context = None,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
) -> None:
    """Per-run state, node, attempts, duration and metric; for pending runs, why they are pending.

    Costs the same few API requests for 10 runs or 10,000: the Job, one label-selected pod list, and the
    namespace's events only while runs are pending.
    """
    from rich.live import Live

    from ml_jobs.kube import sweep_status

    console = _console()
    with _connect(kubeconfig, context, namespace) as api:
        root = _results_root(results_path)
        current = sweep_status(api, experiment, revision=revision, results_path=root)
        if not watch or current.finished:
            _print_status(console, current, show_all=show_all)
            return
        # While watching, the view is the short form (a live display redraws all of it several times a second);
        # with --all, every run is listed once the sweep has ended.
        try:
            with Live(_status_view(current, limit=STATUS_ROWS), console=console, refresh_per_second=4) as live:
                while not current.finished:
                    time.sleep(interval)
                    current = sweep_status(api, experiment, revision=revision, results_path=root)
                    live.update(_status_view(current, limit=STATUS_ROWS))
        except KeyboardInterrupt:
            console.print("stopped watching; the sweep goes on")
            return
        if show_all:
            _print_status(console, current, show_all=True)


def logs(
    experiment: Annotated[str, typer.Argument(help="experiment name.")],
    run: Annotated[str, typer.Argument(help="run index (3) or name (run-00003).")],
    *,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="stream the log as it grows.")] = False,
    tail: Annotated[int | None, typer.Option(help="only the last N lines.")] = None,
    revision: Revision = None,
    context: Context = None,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
) -> None:
    """Print the log of one run (its latest attempt)."""
    from ml_jobs.kube import run_logs

    with _connect(kubeconfig, context, namespace) as api:
        try:
            for line in run_logs(api, experiment, run, follow=follow, revision=revision, tail=tail):
                sys.stdout.write(line + "\n")
                sys.stdout.flush()
        except KeyboardInterrupt:
            pass


def cancel(
    experiment: Annotated[str, typer.Argument(help="experiment name.")],
    *,
    revision: Revision = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="do not ask for confirmation.")] = False,
    context: Context = None,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
) -> None:
    """Cancel a sweep: record each run's state, delete the Job; running runs get SIGTERM, then SIGKILL."""
    from ml_jobs.kube import cancel as do_cancel

    with _connect(kubeconfig, context, namespace) as api:
        if not yes:
            typer.confirm(f"cancel experiment {experiment} in namespace {api.namespace}?", abort=True)
        result = do_cancel(api, experiment, revision=revision)
    _console().print(result.explain(), soft_wrap=True)


def list_(
    *,
    context: Context = None,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
) -> None:
    """Experiments in the namespace (also those whose Job is gone) with their runs counted by state."""
    from rich.table import Table

    from ml_jobs.kube import list_experiments

    with _connect(kubeconfig, context, namespace) as api:
        found = list_experiments(api)
        ns = api.namespace
    console = _console()
    if not found:
        console.print(f"no experiments in namespace {ns}")
        return
    table = Table(header_style="bold", box=None, pad_edge=False, title=f"experiments in {ns}")
    queued = any(e.queue for e in found)  # team queues (Kueue): where each waits or was admitted
    for col in (
        "experiment",
        "rev",
        "state",
        "runs",
        "by state",
        *(("queue", "flavor") if queued else ()),
        "submitted",
        "by",
    ):
        table.add_column(col)
    for e in found:
        table.add_row(
            e.experiment,
            str(e.revision),
            e.state,
            str(e.runs),
            _counts_text(e.counts),
            *((e.queue or "-", e.flavor or "-") if queued else ()),
            e.submitted_at,
            e.submitted_by,
        )
    console.print(table)


def results(
    experiment: Annotated[str, typer.Argument(help="experiment name.")],
    *,
    local: Annotated[
        bool, typer.Option("--local", help="runs of `ml-jobs run --local`, read from --results-dir: no cluster.")
    ] = False,
    results_dir: Annotated[
        Path | None,
        typer.Option("--results-dir", "-o", help="with --local: their results root (default: runs)."),
    ] = None,
    revision: Revision = None,
    results_path: ResultsPath = None,
    csv: Annotated[bool, typer.Option("--csv", help="print CSV instead of the table.")] = False,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="also write a PNG of the metric against each parameter.", metavar="PNG"),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="show only the best N runs.")] = None,
    show_all: Annotated[
        bool, typer.Option("--all", "-a", help="every run of a large sweep (a plain table, streamed).")
    ] = False,
    reader_image: Annotated[
        str | None,
        typer.Option(
            help="image of the reader pod used when the volume is not mounted here (default: the experiment's "
            "own image, whose python reads the files).",
        ),
    ] = None,
    context: Context = None,
    namespace: Namespace = None,
    kubeconfig: Kubeconfig = None,
) -> None:
    """Every run's metrics ranked by the objective: of local runs, or from the cluster's results volume.

    With --local, from the directory `ml-jobs run --local` wrote (no cluster, no kubeconfig). Otherwise from the
    results volume: read directly where it is mounted here (--results-path, $ML_JOBS_RESULTS_PATH), else by a
    short-lived pod that mounts the same claim read-only, prints the files, and is deleted. Beyond 50 runs a
    terminal shows the best 20 (--limit N for more); --all, or a pipe, gets a plain table of every run.
    """
    from ml_jobs.results import plot as do_plot

    if results_dir is not None and not local:
        raise HerdError(
            "--results-dir is where `ml-jobs run --local` wrote: add --local "
            "(the cluster's results volume mounted here is --results-path)"
        )
    if local:
        from ml_jobs import layout
        from ml_jobs.local import read_local_results

        found = read_local_results(results_dir or layout.LOCAL_RESULTS_DIR, experiment, revision=revision)
    else:
        from ml_jobs.kube import read_results

        with _connect(kubeconfig, context, namespace) as api:
            found = read_results(
                api, experiment, revision=revision, results_path=results_path, reader_image=reader_image
            )
    _print_results(found, csv=csv, limit=limit, show_all=show_all)
    if plot is not None:
        written = do_plot(found, plot)
        print(f"wrote {written}", file=sys.stderr)


def _print_results(found: ExperimentResults, *, csv: bool, limit: int | None, show_all: bool) -> None:
    from ml_jobs import _tables
    from ml_jobs.results import to_csv

    if csv:
        sys.stdout.write(to_csv(found, limit=limit))
        return
    console = _console()
    if not console.is_terminal:  # logs and CI: rich would assume 80 columns and squeeze the table
        console.width = max(console.width, 140)
    rows = len(found.runs) if limit is None else min(limit, len(found.runs))
    form = _tables.form(rows, terminal=console.is_terminal, show_all=show_all)
    if form == "plain":
        found.write_plain(sys.stdout, limit=limit)
        return
    console.print(found.table(limit=RESULTS_ROWS if form == "short" else limit))
    if form == "short":
        console.print(f"--limit N for more, --all for all {len(found.runs):,}", style="dim")
