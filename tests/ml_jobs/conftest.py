"""Fixtures and options for the ml_jobs tests.

``pytest tests/ml_jobs --update-golden`` (or ``HERD_UPDATE_GOLDEN=1 pytest``) rewrites the golden YAML under
tests/golden/ from the current renderer instead of comparing against it.
"""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite tests/golden/*.yaml from the current renderer instead of comparing",
    )


@pytest.fixture(scope="session")
def update_golden(request: pytest.FixtureRequest) -> bool:
    """Whether golden files are being regenerated."""
    try:
        flag = bool(request.config.getoption("--update-golden"))
    except ValueError:  # option not registered: pytest started above tests/ml_jobs
        flag = False
    return flag or os.environ.get("HERD_UPDATE_GOLDEN", "") not in ("", "0")
