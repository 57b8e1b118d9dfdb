"""How herd reads YAML that people write: experiment specs, Pulumi stack files.

As YAML 1.2 (ruamel.yaml's safe loader), because that is what people mean: ``1e-5`` is a number, ``no`` is the
word no, ``017`` is seventeen. PyYAML follows YAML 1.1, where ``1e-5`` is a string and ``no`` is false — so a
learning-rate range written the usual way was refused. The Pulumi CLI reads stack files the 1.2 way too.

Two things more than a plain load:

- a key given twice in one mapping is an error naming both lines (a parser would keep the last one silently);
- an error is one line that keeps what went wrong and where it starts: an unclosed quote on line 6 is reported at
  line 6 ("while scanning a quoted scalar"), the end of the file where the parser gave up as an aside.
"""

from __future__ import annotations

from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.constructor import ConstructorError, SafeConstructor
from ruamel.yaml.error import YAMLError

from ml_jobs.errors import YamlError

__all__ = ["YamlError", "load_yaml"]


class _Constructor(SafeConstructor):
    """The safe constructor, with a one-line duplicate-key message (ruamel's spans several lines)."""

    def check_mapping_key(self, node: Any, key_node: Any, mapping: Any, key: Any, value: Any) -> bool:
        if key not in mapping:
            return True
        first = next(
            (k.start_mark.line + 1 for k, _ in node.value if k is not key_node and k.value == key_node.value),
            None,
        )
        also = f" (first on line {first})" if first is not None else ""
        raise ConstructorError(None, None, f"key {key!r} is given twice{also}", key_node.start_mark)


def _at(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _error(e: YAMLError) -> YamlError:
    """One line from the parser's error: where the trouble starts, what it is, and where the parser gave up."""
    context = getattr(e, "context", None)
    context_mark = getattr(e, "context_mark", None)
    problem = getattr(e, "problem", None)
    problem_mark = getattr(e, "problem_mark", None)
    if problem is None:
        return YamlError(None, None, " ".join(str(e).split()))
    text = f"{context}, {problem}" if context else str(problem)
    if context_mark is not None and problem_mark is not None:
        if context_mark.line != problem_mark.line:
            text += f" at {_at(problem_mark)}"
        elif context_mark.column != problem_mark.column:
            text += f" at column {problem_mark.column + 1}"
    start = context_mark or problem_mark
    text = " ".join(text.split())
    if start is None:
        return YamlError(None, None, text)
    return YamlError(start.line + 1, start.column + 1, text)


def load_yaml(text: str) -> Any:
    """Parse one YAML 1.2 document of plain data (mappings, lists, strings, numbers, booleans, null).

    Raises:
        YamlError: the text is not valid YAML, holds more than one document, or gives a key twice in a mapping;
            its ``line`` and ``column`` (1-based) say where the trouble starts.
    """
    yaml = YAML(typ="safe", pure=True)  # pure: the same parser, marks and messages wherever herd runs
    yaml.Constructor = _Constructor
    try:
        return yaml.load(text)
    except YAMLError as e:
        raise _error(e) from None
