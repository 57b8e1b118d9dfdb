"""Golden files: every example spec (and the specs under tests/ml_jobs/specs/) renders to committed YAML.

A change to the renderer shows up here as a diff to review. To accept it, regenerate:
``pytest tests/ml_jobs/test_golden.py --update-golden`` (or ``HERD_UPDATE_GOLDEN=1 pytest ...``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ml_jobs.render import render, validate_schema
from ml_jobs.spec import load_spec

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml")) + sorted((REPO / "tests/ml_jobs/specs").glob("*.yaml"))
GOLDEN = REPO / "tests" / "golden"
# Fixed so that the files do not depend on who runs the tests.
OWNER = "golden"
NAMESPACE = "ml-team"


def test_there_are_examples():
    assert any(p.parent.name == "examples" for p in EXAMPLES), "examples/*.yaml"


@pytest.mark.parametrize("example", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_renders_to_its_golden_yaml(example, update_golden):
    rendered = render(load_spec(example), owner=OWNER, namespace=NAMESPACE)
    validate_schema(rendered.objects)
    text = rendered.to_yaml()
    golden = GOLDEN / f"{example.stem}.yaml"
    if update_golden:
        golden.write_text(text)
        pytest.skip(f"rewrote {golden.relative_to(REPO)}")
    assert golden.exists(), f"no golden file {golden.relative_to(REPO)}: run pytest --update-golden"
    assert text == golden.read_text(), f"{example.name} renders differently from {golden.name} (--update-golden)"


def test_no_golden_file_is_orphaned():
    stems = {p.stem for p in EXAMPLES}
    assert {p.stem for p in GOLDEN.glob("*.yaml")} <= stems
