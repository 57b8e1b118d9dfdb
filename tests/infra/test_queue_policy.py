"""The admission policies that keep a team's work in its queue (infra/addons/queue_policy.py), as the offline plan
declares them, and Kueue's Configuration behind them.

Checked here without an API server: the plan holds exactly the objects built, they are valid API objects for every
supported minor, they match CREATE of Jobs and pods in the team namespaces only (the Job controller's pods matched
out), they fail closed, and the reader shape they admit is built from the very constants ml-jobs' reader pod is
built from (one owner). Whether the real API server evaluates them as meant — refusing the skip-the-queue attempts
in one line, admitting ml-jobs' Job and reader — is tests/ml_jobs/cluster/test_queues.py's to show, with the real
Kueue behind them.
"""

from __future__ import annotations

import json

import kubernetes_validate
import pytest

from infra import config
from infra.addons.queue_policy import JOB_CONTROLLER_USERS, JOBS_POLICY, PODS_POLICY, bindings, checks, policies
from infra.config import SUPPORTED_MINORS
from ml_jobs import queueing
from ml_jobs.kube import results

POLICY = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicy"
BINDING = "kubernetes:admissionregistration.k8s.io/v1:ValidatingAdmissionPolicyBinding"


@pytest.fixture(scope="module")
def cfg(example_values) -> config.StackConfig:
    return config.load(example_values)


def _by_name(objects: list[dict]) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects}


def _planned(plan, kind: str) -> dict[str, dict]:
    return {k: v for k, v in _by_name(plan.kubernetes_objects(kind)).items() if k in {JOBS_POLICY, PODS_POLICY}}


def test_the_plan_holds_exactly_the_policies_and_bindings_built(example_plan, cfg):
    assert _planned(example_plan, "ValidatingAdmissionPolicy") == _by_name(policies(cfg))
    assert _planned(example_plan, "ValidatingAdmissionPolicyBinding") == _by_name(bindings(cfg))


@pytest.mark.parametrize("minor", SUPPORTED_MINORS)
def test_the_objects_are_valid_for_every_supported_kubernetes(cfg, minor):
    for obj in [*policies(cfg), *bindings(cfg)]:
        kubernetes_validate.validate(obj, minor, strict=True)


def test_jobs_and_pods_are_matched_on_create_and_the_policies_fail_closed(cfg):
    specs = {p["metadata"]["name"]: p["spec"] for p in policies(cfg)}
    matched = {
        name: [
            (r["apiGroups"], r["resources"], r["operations"]) for r in spec["matchConstraints"]["resourceRules"]
        ]
        for name, spec in specs.items()
    }
    assert matched == {
        JOBS_POLICY: [(["batch"], ["jobs"], ["CREATE"])],
        PODS_POLICY: [([""], ["pods"], ["CREATE"])],
    }
    for spec in specs.values():
        assert spec["failurePolicy"] == "Fail"
        assert all(v["reason"] == "Forbidden" and v["message"] for v in spec["validations"])
    # Only the Job controller's pods are matched out: a Job's pods, whose Job went through the queue.
    (condition,) = specs[PODS_POLICY]["matchConditions"]
    assert condition["expression"] == f"!(request.userInfo.username in {json.dumps(list(JOB_CONTROLLER_USERS))})"
    assert "matchConditions" not in specs[JOBS_POLICY]


def test_the_bindings_deny_in_the_team_namespaces_only(cfg):
    for b in bindings(cfg):
        spec = b["spec"]
        assert spec["policyName"] == b["metadata"]["name"] and spec["validationActions"] == ["Deny"]
        names = {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["vision", "nlp"]}
        assert spec["matchResources"]["namespaceSelector"] == {"matchExpressions": [names]}


def test_each_namespace_is_held_to_its_own_teams_queue(cfg):
    for p in policies(cfg):
        (queue,) = [v for v in p["spec"]["variables"] if v["name"] == "queue"]
        table = {t.name: queueing.queue_name(t.name) for t in cfg.teams}
        assert queue["expression"] == f"{json.dumps(table)}[request.namespace]"
    jobs = checks(cfg)[JOBS_POLICY]
    assert [c.message for c in jobs] == [
        "Jobs in team namespaces must name the team queue (kueue.x-k8s.io/queue-name)",
        "Jobs in team namespaces must name their own namespace's team queue",
    ]
    # The second check stays quiet where the first already refuses: one line per refusal.
    assert jobs[1].expression.startswith("!has(object.metadata.labels) || !(")


def test_the_reader_shape_is_the_reader_pods_own(cfg):
    # GIVEN the pods policy's reader properties and the reader pod ml-jobs creates
    (pods,) = [p for p in policies(cfg) if p["metadata"]["name"] == PODS_POLICY]
    shape = {v["name"]: v["expression"] for v in pods["spec"]["variables"]}
    reader = results.reader_pod("e", "herd-results", "e", image="registry.example.com/x:1")
    (container,) = reader["spec"]["containers"]
    # THEN every pinned value is the reader's, from the constants it is built from
    for i, arg in enumerate(container["command"][1:], start=1):
        assert f"variables.c.command[{i}] == {json.dumps(arg)}" in shape["reader_command"]
    assert f"variables.c.command.size() == {len(container['command'])}" in shape["reader_command"]
    for part, amounts in container["resources"].items():
        assert f"variables.c.resources.{part}.size() == {len(amounts)}" in shape["reader_resources"]
        for name, value in amounts.items():
            assert f'string(variables.c.resources.{part}["{name}"]) == "{value}"' in shape["reader_resources"]
    assert "nvidia.com/gpu" not in json.dumps(container["resources"])
    assert reader["spec"]["activeDeadlineSeconds"] == results.READER_DEADLINE_SECONDS
    assert shape["reader_deadline"].endswith(f"<= {results.READER_DEADLINE_SECONDS}")
    assert all(v["persistentVolumeClaim"]["readOnly"] for v in reader["spec"]["volumes"])
    assert "priorityClassName" not in reader["spec"] and len(reader["spec"]["containers"]) == 1
    # AND the one validation is all of them
    (validation,) = pods["spec"]["validations"]
    names = [n for n in shape if n.startswith("reader_")]
    assert validation["expression"] == " && ".join(f"variables.{n}" for n in names)


def test_submitters_are_bound_only_after_the_queue_policies(example_plan):
    queue_bindings = {
        r.urn for r in example_plan.of_type(BINDING) if r.inputs["metadata"]["name"] in {JOBS_POLICY, PODS_POLICY}
    }
    assert len(queue_bindings) == 2
    for team in ("vision", "nlp"):
        submitters = example_plan.one(
            "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", f"team-{team}-submitters"
        )
        assert queue_bindings <= set(submitters.dependencies)


def test_no_teams_no_queue_policies(planner, example_values):
    plan = planner({**example_values, "herd:teams": []})
    assert not plan.of_type(POLICY) and not plan.of_type(BINDING)
