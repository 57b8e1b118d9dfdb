"""The Kubernetes minors herd supports are written in three parts that must agree: the Pulumi program
(infra/config.py), the playbooks' inventory validation (validate_inventory's defaults and argument spec) and
ml_jobs' render validation, which may accept older servers it still works with but never fewer minors. The
project's default version (Pulumi.yaml) and both halves of the example site run one supported patch release."""

from __future__ import annotations

from pathlib import Path

import yaml

from infra.config import SUPPORTED_MINORS, declarations
from ml_jobs.render import KUBERNETES_VERSIONS

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "playbooks" / "roles" / "validate_inventory"


def _minor(version: str) -> str:
    return ".".join(version.split(".")[:2])


def test_the_supported_minors_are_the_ones_upstream_supports():
    assert SUPPORTED_MINORS == ("1.35", "1.36", "1.37")


def test_inventory_validation_supports_the_same_minors_as_the_pulumi_program():
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    spec = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())
    documented = spec["argument_specs"]["main"]["options"]["validate_inventory_supported_minors"]["default"]
    assert tuple(defaults["validate_inventory_supported_minors"]) == SUPPORTED_MINORS
    assert tuple(documented) == SUPPORTED_MINORS


def test_ml_jobs_validates_renderings_for_every_supported_minor():
    assert set(SUPPORTED_MINORS) <= set(KUBERNETES_VERSIONS)


def test_the_default_and_the_example_site_run_one_patch_release_of_the_default_minor():
    default = declarations()["herd:kubernetesVersion"].default
    stack = yaml.safe_load((REPO / "Pulumi.example.yaml").read_text())["config"]["herd:kubernetesVersion"]
    inventory = yaml.safe_load((REPO / "inventory" / "example" / "group_vars" / "all.yml").read_text())
    assert str(default) == str(stack) == inventory["herd_kubernetes_version"] == "1.36.3"
    assert _minor(str(default)) in SUPPORTED_MINORS
