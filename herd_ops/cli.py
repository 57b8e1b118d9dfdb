"""The ``herd-ops`` command line: run one of herd's playbooks with live per-host progress and a summary.

Exit status: 0 when every host succeeded, 1 when any host failed or was unreachable (they are named in the
summary with the failed task and its message), 2 when the command itself is wrong (unknown playbook, missing
inventory, malformed ``-e``). ``check-shares`` exits 1 when the teams' on-prem shares do not fit the on-prem
servers (a line per flavor and resource). ``HERD_DEBUG=1`` shows tracebacks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from herd_ops._runner import OpsError
from ml_jobs import command_line

app = typer.Typer(
    name="herd-ops",
    help="Run herd's playbooks (control_plane, join, verify, remove_node, site, validate) on the on-prem servers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

EXIT_HOSTS_FAILED = 1
EXIT_SHARES_DO_NOT_FIT = 1


def _extravars(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, eq, value = pair.partition("=")
        if not eq or not key.isidentifier():
            raise OpsError(f"-e {pair!r}: expected NAME=VALUE")
        out[key] = value
    return out


@app.command()
def run(  # noqa: PLR0917 - typer maps each parameter to a CLI argument or option
    playbook: Annotated[str, typer.Argument(help="control_plane, join, verify, remove_node, site, or a path.")],
    inventory: Annotated[Path, typer.Option("--inventory", "-i", help="Inventory file or directory.")],
    limit: Annotated[str | None, typer.Option("--limit", "-l", help="Only these hosts (Ansible pattern).")] = None,
    extra: Annotated[list[str] | None, typer.Option("--extra-var", "-e", help="NAME=VALUE, repeatable.")] = None,
    pipelining: Annotated[bool, typer.Option(help="SSH pipelining (fewer round trips per task).")] = True,
    plain: Annotated[bool, typer.Option("--plain", help="No live display: one line per host event.")] = False,
    artifacts: Annotated[Path | None, typer.Option(help="Keep ansible-runner's event log here.")] = None,
) -> None:
    """Run PLAYBOOK on the inventory's hosts; show each host's progress; summarise per host."""
    from rich.console import Console
    from rich.live import Live

    from herd_ops._display import print_summary, progress_table
    from herd_ops._runner import resolve_playbook, run_playbook

    console = Console()
    variables = _extravars(extra or [])
    path = resolve_playbook(playbook)
    name = path.name
    if plain or not console.is_terminal:
        # One line per thing that happened: what changed, what failed; ok and skipped tasks stay quiet.
        def on_result(host: str, task: str, outcome: str, message: str) -> None:
            if outcome in ("changed", "failed", "unreachable"):
                line = f"{host:<14} {outcome:<11} {task}" + (f": {message}" if message else "")
                console.print(line, highlight=False, markup=False, soft_wrap=True)

        result = run_playbook(path, inventory, limit=limit, extravars=variables, pipelining=pipelining,
                              on_result=on_result, keep_artifacts=artifacts)  # fmt: skip
    else:
        with Live(progress_table({}, name), console=console, refresh_per_second=8, transient=True) as live:
            result = run_playbook(path, inventory, limit=limit, extravars=variables, pipelining=pipelining,
                                  on_change=lambda hosts: live.update(progress_table(hosts, name)),
                                  keep_artifacts=artifacts)  # fmt: skip
    print_summary(console, result)
    if not result.ok:
        raise typer.Exit(EXIT_HOSTS_FAILED)


@app.command("check-shares")
def check_shares(
    kubeconfig: Annotated[
        str | None, typer.Option(help="Kubeconfig (default: $KUBECONFIG, ~/.kube/config).")
    ] = None,
) -> None:
    """Check that the teams' on-prem shares (Kueue quotas) fit the on-prem servers the cluster has now."""
    from herd_ops.shares import read_cluster

    fits = read_cluster(kubeconfig)
    if not fits:
        typer.echo("no team has an on-prem share (no Kueue flavors or queues in this cluster)")
    for fit in fits:
        if fit.fits:
            typer.echo(str(fit))
        else:
            typer.echo(f"herd-ops: error: {fit}", err=True)
    if not all(fit.fits for fit in fits):
        raise typer.Exit(EXIT_SHARES_DO_NOT_FIT)


@app.command()
def playbooks() -> None:
    """List herd's playbooks and what each does."""
    from herd_ops._runner import PLAYBOOKS

    for path in sorted(PLAYBOOKS.glob("*.yml")):
        lines = path.read_text(encoding="utf-8").splitlines()
        about = next((line.lstrip("# ").strip() for line in lines if line.startswith("# ")), "")
        typer.echo(f"{path.stem:<14} {about}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``herd-ops`` console script."""
    command_line.run(app, "herd-ops", argv)


if __name__ == "__main__":
    main()
