"""infra/__main__.py as `pulumi up` runs it.

The Python language host executes the program directory by path (``runpy.run_path("infra/",
run_name="__main__")``) with the stack's config in ``PULUMI_CONFIG``. Here the engine is Pulumi's mock monitor
instead of the CLI, in a fresh interpreter started with ``-S`` (no site hooks, so herd's editable install is
invisible) and a working directory outside the repository: the program must find its own packages, read its
config through ``pulumi.Config``, and refuse bad config with one line naming the key."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig

import pytest

from tests.infra.helpers import REPO, stack_values

pytestmark = pytest.mark.slow

DRIVER = """
import json, runpy, sys
sys.path.append({site!r})  # site-packages without its .pth hooks: pulumi is importable, herd is not
import pulumi
from pulumi.runtime import mocks
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

registered = []

class Engine(mocks.Mocks):
    def new_resource(self, args):
        registered.append(args.typ)
        state = dict(args.inputs)
        if args.typ.startswith("random:"):
            state["result"] = "abc123"
        return args.name + "-id", state
    def call(self, args):
        if args.token == "aws:index/getAvailabilityZones:getAvailabilityZones":
            return {{"names": ["eu-central-1a", "eu-central-1b"], "zoneIds": ["a", "b"], "id": "x"}}
        return {{"value": "ami-0123456789abcdef0"}}

pulumi.runtime.set_mocks(Engine(), project="herd", stack="dev", preview=False)
assert "infra" not in sys.modules
try:
    _sync_await(run_pulumi_func(lambda: runpy.run_path({program!r}, run_name="__main__")))
except pulumi.RunError as e:
    print("RUN-ERROR " + str(e))
    sys.exit(3)
print(json.dumps(sorted(set(registered))))
"""


def _run(values: dict, tmp_path) -> subprocess.CompletedProcess:
    env = {
        "PATH": "/usr/bin:/bin",
        "PULUMI_CONFIG": json.dumps({k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}),
    }
    script = DRIVER.format(site=sysconfig.get_paths()["purelib"], program=str(REPO / "infra"))
    return subprocess.run(
        [sys.executable, "-S", "-c", script],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_program_runs_as_the_language_host_runs_it(example_values, tmp_path):
    result = _run(example_values, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    types = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert {
        "aws:autoscaling/group:Group",
        "aws:ec2/vpnConnection:VpnConnection",
        "kubernetes:helm.sh/v3:Release",
        "kubernetes:core/v1:Secret",
        "aws:ssm/parameter:Parameter",
    } <= types


def test_an_onprem_only_stack_registers_no_aws_resource_as_the_language_host_runs_it(tmp_path):
    # The driver's engine answers any invoke; that none is made shows in test_onprem_only.py (the plan's invokes)
    result = _run(stack_values(REPO / "tests/infra/stacks/onprem-only.yaml"), tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    types = set(json.loads(result.stdout.strip().splitlines()[-1]))
    assert "kubernetes:core/v1:Namespace" in types and "kubernetes:helm.sh/v3:Release" in types
    assert not {t for t in types if t.startswith(("aws:", "random:"))}


def test_bad_config_stops_the_program_with_the_key_named(example_values, tmp_path):
    bad = dict(example_values)
    bad["herd:pools"] = [{"name": "gpu", "tier": "gpu", "instanceTypes": ["m5.large"], "maxSize": 2}]
    result = _run(bad, tmp_path)
    assert result.returncode == 3, result.stderr[-3000:]
    (line,) = [ln for ln in result.stdout.splitlines() if ln.startswith("RUN-ERROR")]
    assert (
        line == "RUN-ERROR herd:pools[0].instanceTypes[0]: m5.large has no NVIDIA GPU but the pool's tier is gpu"
    )
