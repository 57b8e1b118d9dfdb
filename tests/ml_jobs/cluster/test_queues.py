"""Team queues against the real Kueue controller (v0.17.0, built from its module) on the local real cluster, KWOK
nodes shaped like the example site.

Each test makes two teams of its own: two fresh team namespaces, each labelled as its team, with the ClusterQueue
and LocalQueue infra derives for it (``infra.addons.queues``) in a cohort of the test's own, over the example
stack's flavors (on-prem, on-prem GPU, one per burst pool). Team ``a`` (alice, through the fault proxy): quota 8
GPUs of which at most 2 in the cloud, so 6 on-prem; team ``b``: quota 4 GPUs, at most 2 in the cloud, 2 on-prem.
ml-jobs finds each namespace's LocalQueue itself and puts the sweep into it.
"""

from __future__ import annotations

import copy
import itertools
import time
from collections.abc import Iterator
from typing import Any

import pytest

from herd_local.paths import EXAMPLE_STACK
from infra import config
from infra.addons import queue_policy
from infra.addons import queues as infra_queues
from infra.addons.teams import quota_hard
from infra.plan import load_stack_file
from ml_jobs import layout, queueing, rbac
from ml_jobs.errors import ForbiddenError, ResultsError
from ml_jobs.kube import Api, cancel, list_experiments, read_results, registry, submit, sweep_status
from ml_jobs.kube.queues import workload_of, workload_state
from tests.conftest import Admin
from tests.ml_jobs.cluster.conftest import TeamCluster, experiment, new_team_namespace

pytestmark = pytest.mark.real_cluster

HOLD = {"HERD_SIMULATED_HOLD": "1"}  # runs keep running until their pod is deleted
GPU = "nvidia.com/gpu"
_cohorts = itertools.count(1)


def gpu_sweep(name: str, runs: int, priority: str = "normal") -> Any:
    """``runs`` runs of one GPU each, all at once, any GPU product (so a cloud pool's GPUs fit too)."""
    return experiment(
        runs,
        env=HOLD,
        name=name,
        parallelism=runs,
        priority=priority,
        resources={"cpu": "1", "memory": "4Gi", "gpus": 1},
    )


class Teams:
    """Two teams' namespaces and queues; ``a`` is alice's (through the proxy), ``b`` is driven as admin."""

    def __init__(self, cluster: TeamCluster, b_namespace: str, b_api: Api, cohort: str) -> None:
        self.cluster = cluster
        self.a = cluster.namespace
        self.b = b_namespace
        self.b_api = b_api
        self.cohort = cohort

    def cluster_queue(self, team: str) -> dict[str, Any]:
        return self.cluster.admin.request("GET", f"/apis/{queueing.API_VERSION}/clusterqueues/{team}")

    def state(self, api: Api, job: str) -> Any:
        body = api.get("jobs", job)
        queue = body["metadata"]["labels"][queueing.QUEUE_LABEL]
        return workload_state(queue, workload_of(api, body))


def _stack(a: str, b: str) -> config.StackConfig:
    values = copy.deepcopy(load_stack_file(EXAMPLE_STACK))
    cap = {"gpu": 2, "cpu": "32", "memory": "128Gi"}
    values["herd:teams"] = [
        {"name": a, "submitters": ["ml-vision"], "quota": {"gpu": 8}, "cloud": cap},
        {"name": b, "submitters": ["ml-vision"], "quota": {"gpu": 4}, "cloud": cap},
    ]
    return config.load(values)


def _admin_api(cluster: TeamCluster, namespace: str) -> Api:
    from kubernetes import client

    pki = cluster.local.directory / "pki"
    cfg = client.Configuration()
    cfg.host = cluster.local.server
    cfg.ssl_ca_cert = str(pki / "ca.crt")
    cfg.cert_file, cfg.key_file = str(pki / "admin.crt"), str(pki / "admin.key")
    return Api(cfg, namespace, timeout=10.0, attempts=3, sleep=lambda s: None)


@pytest.fixture
def teams(cluster: TeamCluster, team_objects: list[dict[str, Any]], admin: Admin) -> Iterator[Teams]:
    b = new_team_namespace(cluster.local, team_objects, admin)
    cohort = f"test-{next(_cohorts)}-{cluster.namespace}"
    cfg = _stack(cluster.namespace, b)
    made = []
    for team in cfg.teams:
        # The namespace is the team's (the ClusterQueue admits only its namespace), and its ResourceQuota the one
        # infra derives for the team where Kueue runs: all Kueue may admit to it (its quota and the other team's
        # on-prem share it may borrow), for a has 8 + 2 GPUs and b 4 + 6.
        cluster.admin.request(
            "PATCH",
            f"/api/v1/namespaces/{team.name}",
            {"metadata": {"labels": {"herd.dev/team": team.name}}},
            "application/merge-patch+json",
        )
        cluster.admin.request(
            "PATCH",
            f"/api/v1/namespaces/{team.name}/resourcequotas/herd-team-quota",
            {"spec": {"hard": quota_hard(team, infra_queues.admissible(cfg, team))}},
            "application/merge-patch+json",
        )
        spec = {**infra_queues.cluster_queue_spec(cfg, team), "cohortName": cohort}
        name = queueing.queue_name(team.name)
        cluster.admin.request(
            "POST",
            f"/apis/{queueing.API_VERSION}/clusterqueues",
            {"apiVersion": queueing.API_VERSION, "kind": "ClusterQueue", "metadata": {"name": name}, "spec": spec},
        )
        made.append(name)
        cluster.admin.request(
            "POST",
            f"/apis/{queueing.API_VERSION}/namespaces/{team.name}/localqueues",
            {
                "apiVersion": queueing.API_VERSION,
                "kind": "LocalQueue",
                "metadata": {"name": name, "namespace": team.name},
                "spec": infra_queues.local_queue_spec(team),
            },
        )
    b_api = _admin_api(cluster, b)
    t = Teams(cluster, b, b_api, cohort)
    for name in made:
        cluster.wait(
            f"ClusterQueue {name} active",
            lambda n=name: any(
                c["type"] == "Active" and c["status"] == "True"
                for c in (t.cluster_queue(n) or {}).get("status", {}).get("conditions", [])
            ),
            timeout=30,
        )
    try:
        yield t
    finally:
        b_api.close()
        admin.request("DELETE", f"/api/v1/namespaces/{b}")
        for name in made:
            admin.request("DELETE", f"/apis/{queueing.API_VERSION}/clusterqueues/{name}")
        for pv in admin.request("GET", "/api/v1/persistentvolumes")["items"]:
            if pv["spec"].get("claimRef", {}).get("namespace") == b:
                admin.request("DELETE", f"/api/v1/persistentvolumes/{pv['metadata']['name']}")


def _usage(cq: dict[str, Any], flavor: str) -> dict[str, dict[str, str]]:
    for f in cq.get("status", {}).get("flavorsUsage", []):
        if f["name"] == flavor:
            return {r["name"]: r for r in f["resources"]}
    return {}


def test_on_prem_first_borrowing_an_idle_teams_share_then_cloud_then_the_cap(
    teams: Teams, cluster: TeamCluster, api: Api
) -> None:
    # GIVEN team b idle WHEN alice's team submits 8 one-GPU runs at once (its on-prem share is 6)
    first = submit(api, gpu_sweep("onprem-sweep", 8))
    job = api.get("jobs", first.job)
    assert job["metadata"]["labels"][queueing.QUEUE_LABEL] == cluster.namespace  # found by ml-jobs itself
    # THEN Kueue admits it on-prem, borrowing 2 GPUs of team b's idle share, and the Job starts there
    on_prem = cluster.wait("the first sweep admitted", lambda: (s := teams.state(api, first.job)).flavor and s)
    assert on_prem.line == f"admitted in {cluster.namespace} to onprem-gpu (on-prem)"
    cq = cluster.wait(
        "the borrowed GPUs counted",
        lambda: (
            _usage(q := teams.cluster_queue(cluster.namespace), "onprem-gpu").get(GPU, {}).get("total") == "8"
            and q
        ),
    )
    assert _usage(cq, "onprem-gpu")[GPU]["total"] == "8" and _usage(cq, "onprem-gpu")[GPU]["borrowed"] == "2"
    job = cluster.wait(
        "the Job started by Kueue", lambda: (j := api.get("jobs", first.job))["spec"]["suspend"] is False and j
    )
    assert job["spec"]["template"]["spec"]["nodeSelector"]["herd.dev/location"] == "onprem"

    # WHEN two more runs come while on-prem (with everything borrowable) is full THEN they go to the cloud pool
    second = submit(api, gpu_sweep("cloud-sweep", 2))
    cloud = cluster.wait("the second sweep admitted", lambda: (s := teams.state(api, second.job)).flavor and s)
    assert cloud.line == f"admitted in {cluster.namespace} to gpu-a10g-spot (cloud pool gpu-a10g-spot)"
    started = cluster.wait(
        "the cloud Job started", lambda: (j := api.get("jobs", second.job))["spec"]["suspend"] is False and j
    )
    pool = started["spec"]["template"]["spec"]["nodeSelector"]
    assert pool["herd.dev/pool"] == "gpu-a10g-spot" and pool["herd.dev/location"] == "cloud"

    # WHEN one more run comes THEN the team's cloud cap is reached too: it waits, and status says why in one line
    third = submit(api, gpu_sweep("capped-sweep", 1))
    cluster.wait("the third sweep pending with Kueue's reason", lambda: " > " in teams.state(api, third.job).line)
    status = sweep_status(api, "capped-sweep")
    assert status.queue is not None and status.queue.state == "queued"
    assert status.queue.line.startswith(
        f"queued in {cluster.namespace}, position 1: on-prem is full and the team's cloud cap is reached ("
    ), status.queue.line
    assert "gpu-a10g-spot nvidia.com/gpu" in status.queue.line and "onprem-gpu nvidia.com/gpu" in status.queue.line
    assert "\n" not in status.queue.line
    assert [(c.runs, c.text) for c in status.causes] == [(1, status.queue.line)]  # why-pending is the queue's

    # AND ls shows each sweep's queue and flavor (one Workload list more than without Kueue)
    cluster.reset_log()
    rows = {e.experiment: (e.queue, e.flavor) for e in list_experiments(api)}
    assert rows == {
        "onprem-sweep": (cluster.namespace, "onprem-gpu"),
        "cloud-sweep": (cluster.namespace, "gpu-a10g-spot"),
        "capped-sweep": (cluster.namespace, ""),
    }
    assert len(cluster.log) == 4


def _fill_the_team(teams: Teams, api: Api) -> None:
    """Alice's team at all it may have: 8 GPUs on-prem (6 its own, 2 borrowed from idle team b), 2 in the cloud."""
    onprem = submit(api, gpu_sweep("onprem-sweep", 8))
    cluster = teams.cluster
    cluster.wait("the on-prem sweep admitted", lambda: teams.state(api, onprem.job).flavor == "onprem-gpu")
    cloud = submit(api, gpu_sweep("cloud-sweep", 2))
    cluster.wait("the cloud sweep admitted", lambda: teams.state(api, cloud.job).flavor == "gpu-a10g-spot")


def _waiting(teams: Teams, api: Api, *names: str) -> None:
    """One-run sweeps that wait in alice's team queue, in this order."""
    for i, name in enumerate(names):
        if i:  # Kueue orders equal priorities by creation time, which the API server keeps to the second
            time.sleep(1.1)
        job = submit(api, gpu_sweep(name, 1)).job
        teams.cluster.wait(f"{name} pending with Kueue's reason", lambda j=job: " > " in teams.state(api, j).line)


def test_a_waiting_sweep_says_its_position_in_the_queue_with_one_request_more(
    teams: Teams, cluster: TeamCluster, api: Api
) -> None:
    # GIVEN the team at its cap WHEN two sweeps wait in its queue, one after the other
    _fill_the_team(teams, api)
    _waiting(teams, api, "first-in-line", "second-in-line")
    # THEN status says each one's position, from Kueue's visibility API through the API server's aggregator
    cluster.reset_log()
    second = sweep_status(api, "second-in-line")
    assert second.queue is not None and second.queue.position == 2
    assert second.queue.line.startswith(
        f"queued in {cluster.namespace}, position 2: on-prem is full and the team's cloud cap is reached ("
    ), second.queue.line
    assert [(c.runs, c.text) for c in second.causes] == [(1, second.queue.line)]
    # AND that took one request more than without a position, answered 200 under alice's Role
    sent = [(r.method, r.path.split("/")[-1], r.status) for r in cluster.log]
    assert sent == [
        ("GET", registry.registry_name("second-in-line"), 200),
        ("GET", layout.job_name("second-in-line", 1), 200),
        ("GET", "pods", 200),
        ("GET", "workloads", 200),
        ("GET", "pendingworkloads", 200),
    ], sent
    assert cluster.log[-1].path == (
        f"/apis/{queueing.VISIBILITY_GROUP}/{queueing.VISIBILITY_VERSION}/namespaces/{cluster.namespace}"
        f"/localqueues/{cluster.namespace}/pendingworkloads"
    )
    first = sweep_status(api, "first-in-line")
    assert first.queue is not None and first.queue.position == 1
    # AND an admitted sweep's status asks for no position
    cluster.reset_log()
    admitted = sweep_status(api, "cloud-sweep")
    assert admitted.queue is not None and admitted.queue.state == "admitted"
    assert not cluster.requests(path="pendingworkloads")


def test_without_the_visibility_api_or_leave_to_read_it_status_says_the_line_without_a_position(
    teams: Teams, cluster: TeamCluster, api: Api, admin: Admin
) -> None:
    # GIVEN a sweep waiting in the team's queue
    _fill_the_team(teams, api)
    _waiting(teams, api, "waiting")
    plain = f"queued in {cluster.namespace}: on-prem is full and the team's cloud cap is reached ("

    def status_once() -> tuple[str, list[int]]:
        cluster.reset_log()
        status = sweep_status(api, "waiting")
        assert status.queue is not None and status.queue.position is None
        return status.queue.line, [r.status for r in cluster.requests("GET", "pendingworkloads")]

    # WHEN the aggregator cannot reach Kueue (503) THEN the line has no position, and the GET is not retried
    cluster.inject("GET", "pendingworkloads", 503)
    line, answers = status_once()
    assert line.startswith(plain) and answers == [503], (line, answers)

    # WHEN the team's Role does not allow it THEN the real authorizer refuses it (Kueue asks the API server), once
    role = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{cluster.namespace}/roles/{rbac.SUBMITTER_ROLE}"
    rules = [r for r in rbac.policy_rules() if r["apiGroups"] != [queueing.VISIBILITY_GROUP]]
    admin.request("PATCH", role, {"rules": rules}, "application/merge-patch+json")
    line, answers = cluster.wait("the Role's change seen", lambda: (got := status_once())[1] == [403] and got)
    assert line.startswith(plain)

    # WHEN the cluster serves no visibility API THEN the same
    name = f"{queueing.VISIBILITY_VERSION}.{queueing.VISIBILITY_GROUP}"
    api_service = f"/apis/apiregistration.k8s.io/v1/apiservices/{name}"
    kept = admin.request("GET", api_service)
    admin.request("PATCH", role, {"rules": rbac.policy_rules()}, "application/merge-patch+json")
    admin.request("DELETE", api_service)
    try:
        line, answers = cluster.wait("the API gone", lambda: (got := status_once())[1] == [404] and got)
        assert line.startswith(plain)
    finally:
        kept["metadata"] = {"name": kept["metadata"]["name"]}
        kept.pop("status", None)
        admin.request("POST", "/apis/apiregistration.k8s.io/v1/apiservices", kept)
        cluster.wait(
            "the visibility API back",
            lambda: any(
                c["type"] == "Available" and c["status"] == "True"
                for c in (admin.request("GET", api_service) or {}).get("status", {}).get("conditions", [])
            ),
        )


def test_an_idle_teams_share_is_reclaimed_when_it_submits(teams: Teams, cluster: TeamCluster, api: Api) -> None:
    # GIVEN alice's team holding 8 GPUs on-prem, 2 of them borrowed from team b
    first = submit(api, gpu_sweep("borrower", 8))
    cluster.wait("the borrower admitted", lambda: teams.state(api, first.job).flavor)
    # WHEN team b submits a run of its own
    mine = submit(teams.b_api, gpu_sweep("owner", 2), owner="bob")
    # THEN Kueue takes its share back: team b is admitted on-prem and the borrower is evicted, saying why
    cluster.wait("team b admitted", lambda: teams.state(teams.b_api, mine.job).flavor == "onprem-gpu")
    # AND the borrower is preempted for it and admitted again with only its own share at once
    again = cluster.wait(
        "the borrower re-admitted with its own share",
        lambda: "preempted before" in (s := teams.state(api, first.job)).line and s,
    )
    assert again.line == (
        f"admitted in {cluster.namespace} to onprem-gpu (on-prem), 6 of 8 runs at once; "
        "preempted before (the team it borrowed from took its quota back) and admitted again"
    )
    status = sweep_status(api, "borrower")
    assert status.queue is not None and status.queue.line == again.line


def test_a_high_priority_sweep_preempts_a_low_one_of_the_same_team(
    teams: Teams, cluster: TeamCluster, api: Api
) -> None:
    # GIVEN team b using its own on-prem share (nothing to borrow), and alice's team holding all of its own: a
    # low-priority sweep on-prem (6 GPUs, its whole share) and a low-priority one at the cloud cap (2 GPUs)
    theirs = submit(teams.b_api, gpu_sweep("theirs", 2), owner="bob")
    cluster.wait("team b admitted", lambda: teams.state(teams.b_api, theirs.job).flavor == "onprem-gpu")
    low = submit(api, gpu_sweep("low-sweep", 6, priority="low"))
    cluster.wait("the low sweep admitted on-prem", lambda: teams.state(api, low.job).flavor == "onprem-gpu")
    filler = submit(api, gpu_sweep("cloud-filler", 2, priority="low"))
    cluster.wait("the filler admitted", lambda: teams.state(api, filler.job).flavor == "gpu-a10g-spot")
    # WHEN a high-priority sweep of the same team needs the on-prem share
    urgent = submit(api, gpu_sweep("urgent", 6, priority="high"))
    # THEN Kueue preempts the low sweep for it (not team b's, not the cloud one) and admits it on-prem
    cluster.wait("the urgent sweep admitted", lambda: teams.state(api, urgent.job).flavor == "onprem-gpu")
    preempted = cluster.wait(
        "the low sweep preempted", lambda: (s := teams.state(api, low.job)).state == "preempted" and s
    )
    line = (
        f"preempted in {cluster.namespace}: a higher-priority sweep of the team needed its quota "
        "(this one is herd-low); waiting to be admitted again"
    )
    assert preempted.line == line
    assert teams.state(api, filler.job).flavor == "gpu-a10g-spot"
    assert teams.state(teams.b_api, theirs.job).flavor == "onprem-gpu"
    # AND status says so in one line, for every run of the sweep waiting again (Kueue suspended its Job)
    job = cluster.wait(
        "the low sweep's Job suspended", lambda: (j := api.get("jobs", low.job))["spec"]["suspend"] is True and j
    )
    assert job["spec"]["suspend"] is True
    status = cluster.wait(
        "the low sweep's runs waiting again",
        lambda: (st := sweep_status(api, "low-sweep")).causes and st.causes[0].runs == 6 and st,
    )
    # (first in line again: the only sweep waiting in the team's queue)
    assert status.queue is not None and status.queue.line == f"{line}, position 1"
    assert [(c.runs, c.text) for c in status.causes] == [(6, status.queue.line)]


def test_the_queue_rules_of_the_role_are_what_a_queued_day_uses(teams: Teams, cluster: TeamCluster, api: Api):
    # GIVEN the Role's Kueue rules WHEN alice submits, reads status and ls of a queued sweep
    cluster.reset_log()
    submit(api, gpu_sweep("day", 1))
    cluster.wait("admitted", lambda: teams.state(api, layout.job_name("day", 1)).flavor)
    sweep_status(api, "day")
    list_experiments(api)
    # THEN every Kueue request was allowed by the real authorizer and each Kueue rule was used
    kueue = [r for r in cluster.log if f"/apis/{queueing.GROUP}/" in r.path]
    assert kueue and all(r.status == 200 for r in kueue), kueue
    used = {r.path.split("?")[0].rsplit("/", 1)[-1] for r in kueue if r.method == "GET"}
    (rule,) = [r for r in rbac.SUBMITTER_RULES if r.api_group == queueing.GROUP]
    assert used == set(rule.resources) and rule.verbs == ("list",)


def test_without_a_team_queue_a_sweep_runs_as_without_kueue(cluster: TeamCluster, api: Api) -> None:
    # GIVEN a team namespace without a LocalQueue (Kueue runs in the cluster) WHEN a sweep is submitted
    result = submit(api, experiment(2, env={"HERD_SIMULATED_DURATION": "1s"}))
    job = api.get("jobs", result.job)
    # THEN no queue label, not suspended, and it completes as before; status reads no Workload
    assert queueing.QUEUE_LABEL not in job["metadata"]["labels"] and not job["spec"].get("suspend")
    cluster.wait_job(result.job, "Complete")
    cluster.reset_log()
    assert sweep_status(api, "bert-sweep").queue is None
    assert not [r for r in cluster.log if queueing.GROUP in r.path]


# ------------------------------------------------------------------------------------------------ nobody skips it
@pytest.fixture
def queue_policies(teams: Teams, cluster: TeamCluster, admin: Admin) -> Iterator[list[str]]:
    """infra's team queue policies for the two teams, bound to their namespaces; named for this test (the example
    stack's own, bound to its namespaces, are in the cluster beside them)."""
    cfg = _stack(teams.a, teams.b)
    suffix = f"-{teams.a}"
    made = []
    for built in [*queue_policy.policies(cfg), *queue_policy.bindings(cfg)]:
        doc = copy.deepcopy(built)
        doc["metadata"]["name"] += suffix
        if doc["kind"] == "ValidatingAdmissionPolicyBinding":
            doc["spec"]["policyName"] += suffix
        plural = doc["kind"].lower().removesuffix("y") + ("ies" if doc["kind"].endswith("y") else "s")
        admin.request("POST", f"/apis/admissionregistration.k8s.io/v1/{plural}", doc)
        made.append(f"/apis/admissionregistration.k8s.io/v1/{plural}/{doc['metadata']['name']}")
    # The API server applies a new policy once its informer has it: until an unlabelled Job is refused.
    probe = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "probe"}, "spec": _job_spec({})}
    cluster.wait(
        "the queue policies in force",
        lambda: _refused(admin, f"/apis/batch/v1/namespaces/{teams.a}/jobs?dryRun=All", probe),
        timeout=30,
    )
    try:
        yield made
    finally:
        for path in reversed(made):
            admin.request("DELETE", path)


def _refused(admin: Admin, path: str, body: dict[str, Any]) -> bool:
    try:
        admin.request("POST", path, body)
    except AssertionError as e:  # how Admin reports an HTTP error
        return ": 403 " in str(e)
    return False


def _job_spec(resources: dict[str, str], priority: str | None = None) -> dict[str, Any]:
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [{"name": "train", "image": "registry.example.com/nlp/bert:2.1", "command": ["train"]}],
    }
    if resources:
        pod["containers"][0]["resources"] = {"requests": resources, "limits": resources}
        pod["tolerations"] = [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}]
    if priority:
        pod["priorityClassName"] = priority
    return {"template": {"spec": pod}}


def _attempts(teams: Teams) -> dict[str, tuple[str, dict[str, Any], str]]:
    """What alice might try to skip her team's queue: (plural, object, what the refusal says)."""
    four = {"cpu": "4", "memory": "16Gi", GPU: "4"}
    labelled = {queueing.QUEUE_LABEL: queueing.queue_name(teams.b)}
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "gpu-pod"},
        "spec": _job_spec({GPU: "1", "cpu": "1", "memory": "1Gi"})["template"]["spec"],
    }
    a = teams.a
    return {
        "a Job without the queue label asking for 4 GPUs": (
            "jobs",
            {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "no-label"}, "spec": _job_spec(four)},
            f"herd: Job no-label names no team queue: in team namespace {a} work goes through the team queue {a}; "
            f"label it {queueing.QUEUE_LABEL}={a} (ml-jobs submit does)",
        ),
        "a bare GPU pod": (
            "pods",
            pod,
            "herd: pod gpu-pod is neither a Job's nor ml-jobs' results reader (unlike the reader in: command; "
            f"resources; deadline; read-only claims;): in team namespace {a} work goes through the team queue "
            f"{a}; submit a Job labelled {queueing.QUEUE_LABEL}={a} (ml-jobs submit does)",
        ),
        "a Job labelled for the other team's queue": (
            "jobs",
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": "elsewhere", "labels": labelled},
                "spec": _job_spec(four),
            },
            f"herd: Job elsewhere names queue {teams.b}, not its team's: in team namespace {a} work goes through "
            f"the team queue {a}",
        ),
        "a Job with herd-high outside the queue": (
            "jobs",
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {"name": "urgent"},
                "spec": _job_spec(four, priority="herd-high"),
            },
            f"herd: Job urgent names no team queue: in team namespace {a} work goes through the team queue {a}; "
            f"label it {queueing.QUEUE_LABEL}={a} (ml-jobs submit does)",
        ),
    }


def test_nobody_skips_the_team_queue(
    teams: Teams, queue_policies: list[str], cluster: TeamCluster, api: Api, admin: Admin
) -> None:
    # WHEN alice tries each way around her team's queue THEN the real API server refuses each, in one line
    for what, (plural, body, words) in _attempts(teams).items():
        with pytest.raises(ForbiddenError) as refused:
            api.create(plural, body)
        line = str(refused.value)
        assert "\n" not in line and words in line, (what, line)
        assert "ValidatingAdmissionPolicy 'herd-team-queue-" in line, (what, line)
    assert not cluster.all("jobs") and not cluster.all("pods")

    # WHEN she goes through the queue with herd-high THEN Kueue admits it within the team's quota, no more
    done = submit(api, gpu_sweep("urgent-sweep", 4, priority="high"))
    cluster.wait("the urgent sweep admitted", lambda: teams.state(api, done.job).flavor)

    def admitted_gpus() -> int:
        cq = teams.cluster_queue(cluster.namespace)
        return sum(int(_usage(cq, f).get(GPU, {}).get("total", "0")) for f in ("onprem-gpu", "gpu-a10g-spot"))

    def held_gpus() -> int:
        return sum(
            int(c["resources"]["requests"].get(GPU, "0"))
            for p in cluster.all("pods")
            if p["status"].get("phase") in {"Pending", "Running"}
            for c in p["spec"]["containers"]
        )

    # The ClusterQueue's usage is Kueue's status, and the pods the Job controller's: both written after the
    # admission. Wait for each, not for an order of events.
    admitted = cluster.wait("the ClusterQueue's usage of the admitted sweep", admitted_gpus)
    held = cluster.wait("the admitted sweep's pods", held_gpus)
    assert 0 < held <= admitted <= 8 + 2  # its quota (8) and team b's idle on-prem share it may borrow (2)

    # AND ml-jobs' own commands still work for alice: status, cancel; the results reader is admitted
    status = sweep_status(api, "urgent-sweep")
    assert status.queue is not None and status.queue.state == "admitted"
    with pytest.raises(ResultsError, match=r"reader pod urgent-sweep-results-\w{6} did not finish within 2s"):
        read_results(api, "urgent-sweep", timeout=2, sleep=lambda s: None)  # KWOK runs no reader: admitted is all
    assert cancel(api, "urgent-sweep").deleted
