"""The ``ml-jobs`` command line.

Only this module prints errors: a ``HerdError`` becomes one line on stderr and exit status 2, without a
traceback unless ``HERD_DEBUG`` is set. Commands live in ``_cli_local`` (spec, render, local runs) and
``_cli_cluster`` (the Kubernetes backend); slow imports happen inside the commands so ``--help`` stays instant.
"""

from __future__ import annotations

import os
import sys

import typer

from ml_jobs import _cli_cluster, _cli_local
from ml_jobs.errors import HerdError

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

EXIT_USER_ERROR = 2


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``ml-jobs`` console script."""
    try:
        app(args=argv, standalone_mode=True)
    except HerdError as e:
        if os.environ.get("HERD_DEBUG"):
            raise
        print(f"ml-jobs: error: {e}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)


if __name__ == "__main__":
    main()
