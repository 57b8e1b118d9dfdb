"""Fixtures for the Pulumi program's tests (see helpers.py for how plans are made)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from infra.plan import Plan
from tests.infra.helpers import ALL_STACKS, EXAMPLE, plan_of, stack_values


@pytest.fixture(scope="session")
def example_values() -> dict[str, Any]:
    return stack_values(EXAMPLE)


@pytest.fixture(scope="session")
def example_plan(example_values) -> Plan:
    return plan_of(example_values)


@pytest.fixture(scope="session")
def planner() -> Callable[..., Plan]:
    return plan_of


@pytest.fixture(params=ALL_STACKS, ids=lambda p: p.stem, scope="session")
def any_plan(request) -> Plan:
    """The plan of each committed stack: the example and the edge stacks."""
    return plan_of(stack_values(request.param))
