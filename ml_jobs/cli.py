"""The ``ml-jobs`` command line.

Only this module prints errors: a ``HerdError`` becomes one line on stderr and exit status 2, without a
traceback unless ``HERD_DEBUG`` is set. Commands live in ``_cli_local`` (spec, render, local runs) and
``_cli_cluster`` (the Kubernetes backend); slow imports happen inside the commands so ``--help`` stays instant.
"""

from __future__ import annotations

import typer

from ml_jobs import _cli_cluster, _cli_local, command_line

app = typer.Typer(
    name="ml-jobs",
    help="Describe an experiment once, run its sweep locally or on the herd cluster, and read ranked results.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
_cli_local.register(app)
_cli_cluster.register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``ml-jobs`` console script."""
    command_line.run(app, "ml-jobs", argv)


if __name__ == "__main__":
    main()
