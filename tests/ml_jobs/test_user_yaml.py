"""ml_jobs.user_yaml: people's YAML is read as YAML 1.2, one document, no key twice, errors on one line."""

from __future__ import annotations

import pytest

from ml_jobs.errors import YamlError
from ml_jobs.user_yaml import load_yaml


@pytest.mark.parametrize(
    ("text", "value"),
    [
        # YAML 1.2 core schema: what people mean. (PyYAML, YAML 1.1, reads the first four otherwise.)
        ("1e-5", 1e-5),
        ("1E5", 100000.0),
        ("no", "no"),
        ("on", "on"),
        ("017", 17),
        ("90:00", "90:00"),
        ("0o17", 15),
        ("0x1F", 31),
        ("-.inf", float("-inf")),
        ("true", True),
        ("~", None),
        ("'1e-5'", "1e-5"),
    ],
)
def test_scalars_resolve_as_yaml_1_2(text, value):
    assert load_yaml(f"v: {text}\n") == {"v": value}


def test_a_learning_rate_range_is_two_numbers():
    assert load_yaml("lr: {loguniform: [1e-5, 1e-1]}\n") == {"lr": {"loguniform": [1e-5, 0.1]}}


@pytest.mark.parametrize(
    ("text", "line", "column", "problem"),
    [
        ("a: 1\nb: 2\na: 3\n", 3, 1, "key 'a' is given twice (first on line 1)"),
        ("outer:\n  x: {k: 1, k: 2}\n", 2, 13, "key 'k' is given twice (first on line 2)"),
        (
            "a: 1\nb: 2\nc: 3\nd: 4\ne: 5\nf: 'never closed\n" + "g: 1\n" * 23,
            6,
            4,
            "while scanning a quoted scalar, found unexpected end of stream at line 30, column 1",
        ),
        (
            "a: 1\n---\na: 2\n",
            1,
            1,
            "expected a single document in the stream, but found another document at line 2, column 1",
        ),
        ("a: b: c\n", 1, 5, "mapping values are not allowed here"),
        (
            "a: !!python/object:os.system x\n",
            1,
            4,
            "could not determine a constructor for the tag 'tag:yaml.org,2002:python/object:os.system'",
        ),
    ],
)
def test_errors_keep_where_the_trouble_starts_and_what_it_is(text, line, column, problem):
    with pytest.raises(YamlError) as raised:
        load_yaml(text)
    e = raised.value
    assert (e.line, e.column, e.problem) == (line, column, problem)
    assert str(e) == f"line {line}, column {column}: {problem}"
    assert "\n" not in str(e)


def test_empty_text_is_nothing():
    assert load_yaml("") is None
