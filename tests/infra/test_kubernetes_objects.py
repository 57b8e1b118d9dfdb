"""Every Kubernetes object herd creates directly, validated against the API schema (kubernetes-validate, strict)
for each supported Kubernetes minor and the newer ones the validator ships (so an upgrade finds no surprise),
plus the name and label rules the schema does not check."""

from __future__ import annotations

import kubernetes_validate
import pytest

from infra.config import SUPPORTED_MINORS
from infra.plan import Plan
from ml_jobs import taxonomy

# Not Kubernetes objects: the provider, and Helm releases (checked against their charts' values instead).
NOT_OBJECTS = ("pulumi:providers:kubernetes", "kubernetes:helm.sh/v3:Release")
EXPECTED_KINDS = {
    "Namespace",
    "ResourceQuota",
    "LimitRange",
    "Role",
    "RoleBinding",
    "PriorityClass",
    "PersistentVolumeClaim",
    "StorageClass",
    "Secret",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
}


# Kueue's objects have no schema in the validator: its CRDs (and webhooks) check them on the real API server
# (tests/infra/test_queues_real.py).
NOT_BUILT_IN = ("kubernetes:kueue.x-k8s.io/",)


def objects(plan: Plan) -> list[dict]:
    return [
        r.inputs
        for r in plan.resources
        if r.type.startswith("kubernetes:") and r.type not in NOT_OBJECTS and not r.type.startswith(NOT_BUILT_IN)
    ]


def test_the_example_creates_every_expected_kind(example_plan):
    assert {o["kind"] for o in objects(example_plan)} == EXPECTED_KINDS


@pytest.mark.parametrize("minor", SUPPORTED_MINORS)
def test_every_object_is_valid_for_every_supported_kubernetes(any_plan, minor):
    found = objects(any_plan)
    assert found
    for obj in found:
        try:
            kubernetes_validate.validate(obj, minor, strict=True)
        except kubernetes_validate.ValidationError as e:  # pragma: no cover - the failure message
            pytest.fail(f"{obj['kind']} {obj['metadata'].get('name')}: {e.message} at {list(e.path)}")


def test_names_and_labels_follow_kubernetes_rules(any_plan):
    for obj in objects(any_plan):
        meta = obj["metadata"]
        assert 0 < len(meta["name"]) <= 63, meta["name"]
        for key, value in (meta.get("labels") or {}).items():
            assert taxonomy.is_valid_qualified_name(key), key
            assert taxonomy.is_valid_label_value(value), (key, value)


def test_the_validator_rejects_what_it_should():
    """The check above can fail: a wrong field in strict mode and a wrong type are both refused."""
    bad = {"apiVersion": "v1", "kind": "LimitRange", "metadata": {"name": "x"}, "spec": {"limit": []}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, SUPPORTED_MINORS[0], strict=True)
    bad = {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": {"name": "x"},
        "value": "high",
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, SUPPORTED_MINORS[0], strict=True)
