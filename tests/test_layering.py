"""The import drawing of herd's packages, checked: no circle, no arrow running back up.

The packages stand in layers: ``ml_jobs`` (the engineers' package) at the bottom, ``infra`` (the Pulumi program)
above it, and beside each other on top ``herd_ops`` (the operator's tools) and ``herd_local`` (the local real
cluster herd is developed and tested on). A package imports only from the layers below it, and from ``ml_jobs``
only its public modules: the shared contract (a module whose name starts with ``_`` is private to its package).
Lazy imports inside functions count: they are arrows too.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = ("ml_jobs", "infra", "herd_ops", "herd_local")
MAY_IMPORT = {
    "ml_jobs": set(),
    "infra": {"ml_jobs"},
    "herd_ops": {"ml_jobs", "infra"},
    "herd_local": {"ml_jobs", "infra"},
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The herd modules ``name`` imports (anywhere in the file), each as the module it names."""
    out = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        out |= {t for t in targets if t.split(".")[0] in PACKAGES}
    return out


GRAPH = {name: _imports(name, path, set(_modules())) for name, path in _modules().items()}


@pytest.mark.parametrize("package", PACKAGES)
def test_a_package_imports_only_from_the_layers_below_it(package: str) -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if module.split(".")[0] == package
        for target in targets
        if target.split(".")[0] not in {package, *MAY_IMPORT[package]}
    )
    assert not wrong, wrong


def test_other_packages_use_only_the_public_modules_of_ml_jobs() -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if not module.startswith("ml_jobs")
        for target in targets
        if target.startswith("ml_jobs") and any(part.startswith("_") for part in target.split(".")[1:])
    )
    assert not wrong, wrong


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A circle of imports between modules (a package's ``__init__`` left out: importing a submodule always runs
    it), or None."""
    edges = defaultdict(set)
    for module, targets in graph.items():
        for target in targets:
            if target in graph and target != module and target not in PACKAGES:
                edges[module].add(target)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_module_imports_itself_through_a_circle() -> None:
    circle = _cycle(GRAPH)
    assert circle is None, " -> ".join(circle or [])


def test_the_circle_finder_finds_a_circle() -> None:
    # The check above can fail: a drawing with a circle is caught.
    assert _cycle({"a.x": {"a.y"}, "a.y": {"a.z"}, "a.z": {"a.x"}}) == ["a.x", "a.y", "a.z", "a.x"]
    assert _cycle({"a.x": {"a.y"}, "a.y": set()}) is None
