"""A spec's default results claim is the claim the Pulumi program creates in every team namespace.

Two parts must agree here — ml_jobs.spec.Results (what every pod mounts unless the spec names another claim) and
Pulumi.yaml's ``resultsClaimName`` (what the stack creates) — so this test says so, and the example stack's plan
holds to it.
"""

from __future__ import annotations

from pathlib import Path

from infra import config
from infra.plan import load_stack_file, run_plan
from ml_jobs.spec import Results

REPO = Path(__file__).resolve().parents[2]


def test_the_spec_default_claim_is_the_stack_default():
    assert config.declarations()["herd:resultsClaimName"].default == Results().claim


def test_the_example_stack_creates_that_claim_in_every_team_namespace():
    plan = run_plan(load_stack_file(REPO / "Pulumi.example.yaml"))
    claims = plan.of_type("kubernetes:core/v1:PersistentVolumeClaim")
    assert claims, "the example stack creates no results claim"
    assert {c.inputs["metadata"]["name"] for c in claims} == {Results().claim}
