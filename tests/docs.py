"""The project's docs as tests read them: a named section of a named doc, and the links and headings in them.

A test that holds a doc to the code (a table the doc must show, a count it must state) reads the doc through
:class:`DocSection`, and names its section here in :data:`READ_BY_TESTS`: ``tests/test_docs.py`` checks, without a
cluster, that each of those sections still exists, so a doc moved or a heading renamed fails at once and in one
place, not only in the tier that runs the reader.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parent.parent

_HEADING = re.compile(r"^(#{1,6}) +(.+?)(?: +#+)? *$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """The lines outside fenced code blocks, with their 1-based line numbers."""
    lines, fenced = [], False
    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append((number, line))
    return lines


def headings(text: str) -> list[tuple[int, int, str]]:
    """Every heading as (1-based line number, level, title as written)."""
    found = []
    for number, line in prose_lines(text):
        match = _HEADING.match(line)
        if match:
            found.append((number, len(match.group(1)), match.group(2)))
    return found


def anchor(title: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading anchor of a document, repeated titles numbered as GitHub numbers them (``-1``, ``-2``)."""
    seen: dict[str, int] = {}
    out = set()
    for _, _, title in headings(text):
        slug = anchor(title)
        out.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return out


class DocSection(NamedTuple):
    """One section of one doc: from its heading to the next heading of the same or a higher level."""

    doc: str  # relative to the repository root
    heading: str  # the heading's title as written, without its #s

    def text(self) -> str:
        """The section's text, its heading line included."""
        lines = (REPO / self.doc).read_text(encoding="utf-8").splitlines()
        found = headings("\n".join(lines))
        for i, (number, level, title) in enumerate(found):
            if title == self.heading:
                end = next((n for n, lv, _ in found[i + 1 :] if lv <= level), len(lines) + 1)
                return "\n".join(lines[number - 1 : end - 1]) + "\n"
        raise LookupError(f"{self.doc}: no heading {self.heading!r}")


# The sections tests read. Add a section here when a test starts reading it.
PERMISSIONS = DocSection("docs/engineers/cluster.md", "Permissions")  # tests/ml_jobs/cluster/test_rbac.py
SUBMIT = DocSection("docs/engineers/cluster.md", "`ml-jobs submit SPEC [--new-revision]`")  # …/test_submit.py
TWO_COMMANDS = DocSection("README.md", "Two commands")  # tests/test_docs.py
READ_BY_TESTS = (PERMISSIONS, SUBMIT, TWO_COMMANDS)
