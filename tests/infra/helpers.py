"""Helpers for the Pulumi program's tests: stack files, and plans of them run under Pulumi's mocks.

A plan runs the real program (infra/__main__.py's ``define``) with the stack's config read through the same
``pulumi.Config`` path ``pulumi up`` uses; only the engine is mocked (see infra/plan.py's PlanMocks). Plans are
cached per stack and clock for the session, because each run takes a second or two.
"""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path
from typing import Any

from infra.plan import Plan, PlannedResource, load_stack_file, run_plan

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
EXAMPLE = REPO / "Pulumi.example.yaml"
EDGE_STACKS = sorted((HERE / "stacks").glob("*.yaml"))
ALL_STACKS = [EXAMPLE, *EDGE_STACKS]
# A fixed clock for the join token's rotation epoch: 2026-11-29T12:00:00Z.
NOW = 1795953600.0
# One seed for the generated secrets of every plan in a session (fresh each session): plans compared with
# infra.plan.diff agree on the secrets of the resources that did not change, as a stack's state would.
SEED = secrets.token_bytes(32)

_cache: dict[tuple[str, float, str], Plan] = {}


def stack_values(path: Path) -> dict[str, Any]:
    """The config of a stack file, as full keys to values."""
    return load_stack_file(path)


def plan_of(values: dict[str, Any], now: float = NOW) -> Plan:
    """A (cached) plan of the stack config ``values``."""
    key = (json.dumps(values, sort_keys=True), now, "")
    if key not in _cache:
        _cache[key] = run_plan(values, now=now, seed=SEED)
    return _cache[key]


def user_data(launch_template: PlannedResource) -> str:
    """The decoded user-data of a launch template."""
    return base64.b64decode(launch_template.inputs["userData"]).decode()


def tags_of(group: PlannedResource) -> dict[str, str]:
    """An ASG's tags as a mapping."""
    return {t["key"]: t["value"] for t in group.inputs["tags"]}


def secrets_of(plan: Plan) -> list[str]:
    """Every secret value the mocked providers generated in ``plan`` (token secret, VPN keys, access keys).

    They are produced at run time by the mocks, so no test fixture holds a real or committed secret.
    """
    found: list[str] = []
    for r in plan.resources:
        if r.type == "random:index/randomPassword:RandomPassword":
            found.append(r.outputs["result"])
        elif r.type == "aws:ec2/vpnConnection:VpnConnection":
            found += [r.outputs["tunnel1PresharedKey"], r.outputs["tunnel2PresharedKey"]]
        elif r.type == "aws:iam/accessKey:AccessKey":
            found.append(r.outputs["secret"])
    return found


def join_token(plan: Plan) -> str:
    """The full bootstrap token ``<id>.<secret>`` the mocks generated."""
    token_id = plan.one("random:index/randomString:RandomString", "join-id").outputs["result"]
    secret = plan.one("random:index/randomPassword:RandomPassword", "join-secret").outputs["result"]
    return f"{token_id}.{secret}"


def every_secret(plan: Plan) -> list[str]:
    """:func:`secrets_of` and the full join token, where the stack has one (only a stack with pools does)."""
    has_token = any(r.type == "random:index/randomPassword:RandomPassword" for r in plan.resources)
    return [*secrets_of(plan), *([join_token(plan)] if has_token else [])]


def waits_for(plan: Plan, resource: PlannedResource) -> set[str]:
    """URNs ``resource`` waits for, directly or through what it waits for (the order `pulumi up` creates in)."""
    by_urn = {r.urn: r for r in plan.resources}
    seen: set[str] = set()
    todo = list(resource.dependencies)
    while todo:
        urn = todo.pop()
        if urn not in seen:
            seen.add(urn)
            todo += by_urn[urn].dependencies if urn in by_urn else []
    return seen
