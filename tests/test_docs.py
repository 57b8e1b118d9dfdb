"""The docs hold together: every relative link and anchor resolves, the README stays a short front page with the
two commands and a map, every doc is on the map, and every section a test reads is there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs import READ_BY_TESTS, REPO, TWO_COMMANDS, DocSection, anchors, prose_lines

DOCS = sorted([REPO / "README.md", *(REPO / "docs").rglob("*.md")])
README_MAX_LINES = 150

# Docs another branch adds; a link to one may dangle until that branch is merged, and is checked once it exists.
LANDING_ELSEWHERE = {REPO / "docs/operators/inventory-checks.md"}

_CODE_SPAN = re.compile(r"`+[^`]*`+")
_LINK = re.compile(r"!?\[[^\]]*\]\(<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\)")


def links(doc: Path) -> list[tuple[int, str]]:
    """(line number, target) of every inline link or image outside code."""
    found = []
    for number, line in prose_lines(doc.read_text(encoding="utf-8")):
        for match in _LINK.finditer(_CODE_SPAN.sub("", line)):
            found.append((number, match.group(1)))
    return found


def broken(doc: Path, target: str) -> str | None:
    """Why a link from ``doc`` does not resolve, or None."""
    if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: — not checked offline
        return None
    path_part, _, fragment = target.partition("#")
    path = (doc.parent / path_part).resolve() if path_part else doc
    if not path.is_relative_to(REPO):
        return f"{path_part} is outside the repository"
    if not path.exists():
        return None if path in LANDING_ELSEWHERE else f"{path_part} does not exist"
    if fragment and path.suffix == ".md" and fragment not in anchors(path.read_text(encoding="utf-8")):
        return f"{path.relative_to(REPO)} has no heading with anchor #{fragment}"
    return None


@pytest.mark.parametrize("doc", DOCS, ids=lambda d: str(d.relative_to(REPO)))
def test_every_relative_link_resolves(doc: Path) -> None:
    problems = [
        f"{doc.relative_to(REPO)}:{number}: ({target}): {why}"
        for number, target in links(doc)
        if (why := broken(doc, target))
    ]
    assert not problems, "\n".join(problems)


def test_the_link_checker_sees_a_broken_link_and_anchor(tmp_path: Path) -> None:
    # GIVEN a doc inside the repository linking to a file that exists, one that does not, and a missing anchor
    doc = REPO / "docs" / "README.md"
    # THEN only the bad ones are reported, each with its reason
    assert broken(doc, "../README.md") is None
    assert broken(doc, "../README.md#two-commands") is None
    assert broken(doc, "https://example.org/x") is None
    assert broken(doc, "engineers/nope.md") == "engineers/nope.md does not exist"
    assert broken(doc, "../README.md#nope") == "README.md has no heading with anchor #nope"
    assert broken(doc, "../../etc/passwd") == "../../etc/passwd is outside the repository"
    assert broken(doc, "operators/inventory-checks.md") is None  # landing with another branch
    # AND links inside code are not links
    sample = tmp_path / "sample.md"
    sample.write_text("[a](a.md) `[b](b.md)`\n```\n[c](c.md)\n```\n[d](d.md#x)\n", encoding="utf-8")
    assert links(sample) == [(1, "a.md"), (5, "d.md#x")]


def test_the_readme_is_short() -> None:
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) < README_MAX_LINES, f"README.md has {len(lines)} lines; move the detail into docs/"


def test_the_readme_gives_the_two_commands_and_they_exist() -> None:
    section = TWO_COMMANDS.text()
    commands = re.findall(r"^bash (\S+)", section, flags=re.MULTILINE)
    assert commands == ["scripts/example.sh", "scripts/test.sh"]
    assert all((REPO / c).is_file() for c in commands)


def test_every_doc_is_on_the_map() -> None:
    index = REPO / "docs" / "README.md"
    linked = {(index.parent / t.partition("#")[0]).resolve() for _, t in links(index)}
    missing = [str(d.relative_to(REPO)) for d in DOCS if d.parent != REPO and d != index and d not in linked]
    assert not missing, f"docs/README.md does not link {missing}"
    assert "docs/README.md" in {t.partition("#")[0] for _, t in links(REPO / "README.md")}


@pytest.mark.parametrize("section", READ_BY_TESTS, ids=lambda s: f"{s.doc}#{s.heading}")
def test_every_section_a_test_reads_is_there(section: DocSection) -> None:
    assert section.text().strip().count("\n") >= 2, f"{section.doc}: section {section.heading!r} is empty"


def test_a_missing_section_is_one_clear_error() -> None:
    with pytest.raises(LookupError, match=r"^README.md: no heading 'Nope'$"):
        DocSection("README.md", "Nope").text()
