"""Live per-host progress and the end-of-run summary, drawn with rich."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table
from rich.text import Text

from herd_ops._runner import HostSummary, RunResult

_STYLE = {"ok": "green", "changed": "yellow", "failed": "bold red", "unreachable": "bold magenta"}


def progress_table(hosts: dict[str, HostSummary], title: str) -> Table:
    """One row per host: what it is doing now and its counts so far."""
    table = Table(title=title, title_justify="left", expand=False)
    table.add_column("host")
    table.add_column("task")
    table.add_column("ok", justify="right")
    table.add_column("changed", justify="right")
    table.add_column("failed", justify="right")
    for host in sorted(hosts.values(), key=lambda h: h.name):
        table.add_row(host.name, host.current_task or "…", str(host.ok), str(host.changed), str(host.failed))
    return table


def summary_table(result: RunResult) -> Table:
    """The per-host outcome: Ansible's counts, and the failed task with its message."""
    table = Table(title=f"{result.playbook}: {result.status} (rc {result.rc})", title_justify="left")
    for column, justify in (("host", "left"), ("status", "left"), ("ok", "right"), ("changed", "right"),
                            ("failed", "right"), ("unreachable", "right"), ("skipped", "right"),
                            ("rescued", "right")):  # fmt: skip
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for host in sorted(result.hosts.values(), key=lambda h: h.name):
        table.add_row(
            host.name,
            Text(host.status, style=_STYLE[host.status]),
            str(host.ok),
            str(host.changed),
            str(host.failed),
            str(host.unreachable),
            str(host.skipped),
            str(host.rescued),
        )
    return table


def print_summary(console: Console, result: RunResult) -> None:
    console.print(summary_table(result))
    for host in result.failed_hosts:
        console.print(
            Text.assemble(
                (f"{host.name}", _STYLE[host.status]),
                f" {host.status} at task “{host.failed_task or '?'}”: {host.message or 'no message'}",
            ),
            soft_wrap=True,
        )
