"""Tables of runs that answer at once at 10,000 rows: ``sweep``, ``status --all``, ``results``.

A rich table measures every cell of every row before it prints its first line, which at 10,000 rows takes
seconds. So a table of runs is shown one of three ways (:func:`form`):

- ``rich``: up to ``SHORT_ROWS`` rows, the rich table as always;
- ``short``: more rows on a terminal — the rich table of the first rows (and for a sweep the last ones, too), and
  a line saying how many are left out and how to see them all;
- ``plain``: more rows with ``--all``, or when the output is not a terminal (a pipe, a file) — aligned columns
  separated by two spaces, no colour, written row by row: ``grep``, ``sort`` and ``less`` read it as it is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, TextIO

__all__ = [
    "HEAD_ROWS",
    "SHORT_ROWS",
    "STATE_STYLE",
    "TAIL_ROWS",
    "Column",
    "Form",
    "form",
    "head_and_tail",
    "styled",
    "write_plain",
]

SHORT_ROWS = 50  # up to this many rows the rich table is quick (well under 0.1 s) and fits a screen or two
HEAD_ROWS = 10
TAIL_ROWS = 10
Form = Literal["rich", "short", "plain"]
_BATCH = 500
# A run's state in colour, the same in every table: the Kubernetes backend's states and the local backend's.
STATE_STYLE = {
    "succeeded": "green",
    "failed": "red",
    "running": "yellow",
    "retrying": "magenta",
    "interrupted": "magenta",
    "pending": "dim",
    "cancelled": "dim red",
}


@dataclass(frozen=True)
class Column:
    """A column of a table of runs: its header, and whether its cells are right-aligned (numbers)."""

    header: str
    right: bool = False


def styled(state: str, text: str | None = None) -> str:
    """``text`` (default: the state) in the state's colour, as rich markup."""
    style = STATE_STYLE.get(state)
    text = state if text is None else text
    return f"[{style}]{text}[/]" if style else text


def form(rows: int, *, terminal: bool, show_all: bool) -> Form:
    """How to show a table of ``rows`` rows (see the module doc)."""
    if rows <= SHORT_ROWS:
        return "rich"
    if show_all or not terminal:
        return "plain"
    return "short"


def head_and_tail(count: int, head: int = HEAD_ROWS, tail: int = TAIL_ROWS) -> tuple[range, range]:
    """The first ``head`` and the last ``tail`` of ``count`` positions (the tail empty if they would meet)."""
    if count <= head + tail:
        return range(count), range(0)
    return range(head), range(count - tail, count)


def write_plain(columns: Sequence[Column], rows: Iterable[Sequence[str]], out: TextIO) -> None:
    """Write ``rows`` under a header line as aligned plain text, one line per row."""
    rows = list(rows)  # column widths need every cell; laying out plain strings is fast
    widths = [len(c.header) for c in columns]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = (
            cell.rjust(width) if column.right else cell.ljust(width)
            for column, width, cell in zip(columns, widths, cells, strict=True)
        )
        return "  ".join(parts).rstrip() + "\n"

    out.write(line([c.header for c in columns]))
    # In batches: a terminal's stdout is line-buffered, and one write per row would be one system call per row.
    for start in range(0, len(rows), _BATCH):
        out.write("".join(line(row) for row in rows[start : start + _BATCH]))
    out.flush()
