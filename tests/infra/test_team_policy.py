"""The admission policies that keep each team to its own results, as the offline plan declares them.

What is checked here, without an API server: the plan holds exactly the objects infra/addons/team_policy.py builds
(so a real-server test can take them from ``Plan.kubernetes_objects``), they are valid API objects, they match the
requests they must (CREATE of pods, Jobs and claims) in the team namespaces only, and what ml-jobs itself creates
in a team namespace uses none of the volume kinds they refuse. No CEL is evaluated here: whether the API server
refuses the attack pod, Job and claim and admits ml-jobs' objects is the real-cluster test's to show.
"""

from __future__ import annotations

import kubernetes_validate
import pytest

from infra import config
from infra.addons.storage import PATH_PATTERN
from infra.addons.team_policy import CLAIMS_POLICY, VOLUMES_POLICY, bindings, checks, policies
from infra.config import SUPPORTED_MINORS
from ml_jobs.kube.results import reader_pod
from ml_jobs.render import render
from ml_jobs.spec import Experiment, load_spec
from tests.infra.helpers import REPO

POLICY = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"
BINDING = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding"


@pytest.fixture(scope="module")
def cfg(example_values) -> config.StackConfig:
    return config.load(example_values)


def _by_name(objects: list[dict]) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects}


def test_the_plan_holds_exactly_the_policies_and_bindings_built(example_plan, cfg):
    # (beside the team queue policies: tests/infra/test_queue_policy.py)
    storage = {VOLUMES_POLICY, CLAIMS_POLICY}
    planned = _by_name(example_plan.kubernetes_objects("ValidatingAdmissionPolicy"))
    assert {k: v for k, v in planned.items() if k in storage} == _by_name(policies(cfg))
    planned = _by_name(example_plan.kubernetes_objects("ValidatingAdmissionPolicyBinding"))
    assert {k: v for k, v in planned.items() if k in storage} == _by_name(bindings(cfg))
    assert {r.inputs["metadata"]["name"] for r in example_plan.of_type(POLICY)} >= storage


@pytest.mark.parametrize("minor", SUPPORTED_MINORS)
def test_the_objects_are_valid_for_every_supported_kubernetes(cfg, minor):
    for obj in [*policies(cfg), *bindings(cfg)]:
        kubernetes_validate.validate(obj, minor, strict=True)


def test_each_policy_matches_creates_of_what_it_checks_and_fails_closed(cfg):
    matched = {
        p["metadata"]["name"]: {
            (group, resource, op)
            for rule in p["spec"]["matchConstraints"]["resourceRules"]
            for group in rule["apiGroups"]
            for resource in rule["resources"]
            for op in rule["operations"]
        }
        for p in policies(cfg)
    }
    assert matched == {
        VOLUMES_POLICY: {("", "pods", "CREATE"), ("batch", "jobs", "CREATE")},
        CLAIMS_POLICY: {("", "persistentvolumeclaims", "CREATE")},
    }
    for p in policies(cfg):
        assert p["spec"]["failurePolicy"] == "Fail"
        assert all(v["reason"] == "Forbidden" and v["message"] for v in p["spec"]["validations"])


def test_the_bindings_deny_in_the_team_namespaces_only(cfg):
    for b in bindings(cfg):
        spec = b["spec"]
        assert spec["policyName"] == b["metadata"]["name"]
        assert spec["validationActions"] == ["Deny"]
        # The name label is set by the API server and cannot be changed: a namespace cannot opt itself out.
        names = {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["vision", "nlp"]}
        assert spec["matchResources"]["namespaceSelector"] == {"matchExpressions": [names]}


def test_the_checks_name_this_stacks_class_and_claim(example_values):
    values = {**example_values, "herd:storageClassName": "lab-nas", "herd:resultsClaimName": "lab-results"}
    found = checks(config.load(values))
    (claims,) = found[CLAIMS_POLICY]
    assert '"lab-nas"' in claims.expression and '"lab-results"' in claims.expression
    ephemeral = found[VOLUMES_POLICY][2]
    assert '"lab-nas"' in ephemeral.expression
    assert [c.message for c in found[VOLUMES_POLICY]] == [
        "inline nfs volumes are refused (results go through the claim lab-results)",
        "hostPath volumes are refused",
        "ephemeral volumes of StorageClass lab-nas are refused",
    ]
    assert claims.message == "claims of StorageClass lab-nas other than lab-results are refused"


def test_submitters_are_bound_only_after_the_policies(example_plan):
    bound = {r.urn for r in example_plan.of_type(BINDING)}
    submitters = example_plan.one("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", "team-vision-submitters")
    assert bound <= set(submitters.dependencies)


def test_no_teams_no_policies(planner, example_values):
    plan = planner({**example_values, "herd:teams": []})
    assert not plan.of_type(POLICY) and not plan.of_type(BINDING)


def test_the_results_path_pattern_names_nothing_a_user_sets(example_plan):
    (sc,) = example_plan.of_type("kubernetes:storage.k8s.io/v1:StorageClass")
    assert sc.inputs["parameters"]["pathPattern"] == PATH_PATTERN == "${.PVC.namespace}/${.PVC.name}"
    assert "annotations" not in PATH_PATTERN and "labels" not in PATH_PATTERN


def _volume_kinds(pod_spec: dict) -> set[str]:
    return {key for volume in pod_spec.get("volumes", []) for key in volume if key != "name"}


def test_what_ml_jobs_creates_uses_none_of_the_refused_volume_kinds(cfg):
    # GIVEN the example spec's Job and the results reader pod, as ml-jobs renders them
    exp = load_spec(REPO / "examples" / "digits-sweep.yaml")
    (job,) = [o for o in render(exp, namespace="vision").objects if o["kind"] == "Job"]
    reader = reader_pod(exp.name, exp.results.claim, exp.name, image=exp.image)
    # THEN they mount a ConfigMap and the team's claim, nothing the policies refuse
    assert _volume_kinds(job["spec"]["template"]["spec"]) == {"configMap", "persistentVolumeClaim"}
    assert _volume_kinds(reader["spec"]) == {"persistentVolumeClaim"}
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for spec in (job["spec"]["template"]["spec"], reader["spec"])
        for v in spec["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert claims == {cfg.results_claim_name}


def test_the_spec_default_claim_is_the_stacks_claim(cfg):
    """A spec that names no claim mounts the one the policy lets through."""
    assert Experiment(name="x", image="python:3.11", command=["python"]).results.claim == cfg.results_claim_name
