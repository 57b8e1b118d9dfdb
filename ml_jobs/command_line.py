"""The shape every herd command line shares (``ml-jobs``, ``herd-ops``, ``herd-plan``, ``herd-local``).

Commands are module-level typer functions; library code raises :class:`~ml_jobs.errors.HerdError`; only the
command line prints it: one line ``<prog>: error: <what is wrong, and where>`` on stderr and exit status 2, no
traceback unless ``HERD_DEBUG`` is set.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from ml_jobs.errors import HerdError

__all__ = ["EXIT_USER_ERROR", "run"]

EXIT_USER_ERROR = 2


def run(app: Any, prog: str, argv: list[str] | None = None) -> None:
    """Run typer ``app`` as ``prog`` with ``argv`` (default: the process's arguments); a ``HerdError`` becomes one
    line and exit status :data:`EXIT_USER_ERROR` (re-raised with ``HERD_DEBUG`` set)."""
    try:
        app(args=argv, prog_name=prog, standalone_mode=True)
    except HerdError as e:
        if os.environ.get("HERD_DEBUG"):
            raise
        print(f"{prog}: error: {e}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
