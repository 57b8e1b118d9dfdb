"""Team queues under Pulumi's mocks: Kueue's pinned release, the flavors and queues derived from the stack config
and the taxonomy, and the per-team cloud cap (config, validation, plan)."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from infra import config
from infra.addons import queues
from infra.addons.charts import KUEUE
from ml_jobs import queueing, taxonomy
from tests.infra.helpers import REPO

GPU = taxonomy.GPU_RESOURCE


def _objects(plan, kind):
    return {o["metadata"]["name"]: o for o in plan.kubernetes_objects(kind)}


def test_the_chart_is_the_release_the_tests_run():
    go_mod = (REPO / "scripts" / "components" / "kueue" / "go.mod").read_text()
    pinned = re.search(r"sigs\.k8s\.io/kueue v(\S+)", go_mod)
    assert pinned and pinned[1] == KUEUE.version


def test_kueue_is_installed_from_its_pinned_chart_with_herds_configuration(example_plan):
    release = example_plan.one("kubernetes:helm.sh/v3:Release", "kueue").inputs
    assert release["chart"] == "oci://registry.k8s.io/kueue/charts/kueue" and release["version"] == "0.17.0"
    assert "repositoryOpts" not in release  # an OCI chart has no repository index
    values = release["values"]
    assert values["controllerManager"]["manager"]["image"]["tag"] == "v0.17.0"
    manager = yaml.safe_load(values["managerConfig"]["controllerManagerConfigYaml"])
    # In the team namespaces (and only there) a Job without a queue name is Kueue's too: held, never admitted.
    assert manager["manageJobsWithoutQueueName"] is True
    team = {"key": "herd.dev/team", "operator": "Exists"}
    assert manager["managedJobsNamespaceSelector"] == {"matchExpressions": [team]}
    assert manager["integrations"]["frameworks"] == ["batch/job"]
    # ... which selects exactly the team namespaces
    labelled = {o["metadata"]["name"] for o in example_plan.kubernetes_objects("Namespace")
                if "herd.dev/team" in o["metadata"].get("labels", {})}  # fmt: skip
    assert labelled == {"vision", "nlp"}


def test_flavors_onprem_by_location_and_one_per_burst_pool(example_plan):
    flavors = _objects(example_plan, "ResourceFlavor")
    assert set(flavors) == {"onprem", "onprem-gpu", "gpu-a10g-spot", "cpu-burst"}
    loc = taxonomy.LABELS["location"].key
    assert flavors["onprem"]["spec"] == {"nodeLabels": {loc: "onprem"}}
    assert flavors["onprem-gpu"]["spec"]["nodeTaints"] == [taxonomy.GPU_TAINT.as_node_taint()]
    spot = flavors["gpu-a10g-spot"]["spec"]
    assert spot["nodeLabels"] == {
        loc: "cloud",
        taxonomy.LABELS["pool"].key: "gpu-a10g-spot",
        taxonomy.LABELS["gpu_product"].key: "NVIDIA-A10G",
    }
    assert spot["nodeTaints"] == [taxonomy.GPU_TAINT.as_node_taint()]
    assert "nodeTaints" not in flavors["cpu-burst"]["spec"]
    for f in flavors.values():
        assert f["apiVersion"] == queueing.API_VERSION


def test_flavor_labels_are_what_the_pools_nodes_register_with(example_values):
    from herd_local.site import cloud_node_classes

    cfg = config.load(example_values)
    by_pool = {c.host: c for c in cloud_node_classes(example_values)}
    for flavor in queues.cloud_flavors(cfg):
        node = by_pool[flavor["name"]]
        assert flavor["nodeLabels"].items() <= node.labels.items()
        assert flavor.get("nodeTaints", []) == node.taints


def _flavor_quotas(cq):
    (group,) = cq["spec"]["resourceGroups"]
    assert group["coveredResources"] == ["cpu", "memory", GPU]
    return [(f["name"], {r["name"]: r for r in f["resources"]}) for f in group["flavors"]]


def test_each_team_queues_on_prem_first_then_cloud_capped(example_plan):
    cqs = _objects(example_plan, "ClusterQueue")
    assert set(cqs) == {"vision", "nlp"}
    vision = _flavor_quotas(cqs["vision"])
    # on-prem before cloud; spot before on-demand (the autoscaler's expander order)
    assert [name for name, _ in vision] == ["onprem", "onprem-gpu", "gpu-a10g-spot", "cpu-burst"]
    q = dict(vision)
    # quota gpu 8, cloud cap gpu 2: on-prem share 6
    assert q["onprem-gpu"][GPU]["nominalQuota"] == "6" and "borrowingLimit" not in q["onprem-gpu"][GPU]
    assert q["onprem"][GPU]["nominalQuota"] == "0"
    assert q["onprem"]["cpu"]["nominalQuota"] == "32" and q["onprem"]["memory"]["nominalQuota"] == "128Gi"
    spot = q["gpu-a10g-spot"]
    assert {r: spot[r]["nominalQuota"] for r in spot} == {"cpu": "32", "memory": "128Gi", GPU: "2"}
    assert all(spot[r]["borrowingLimit"] == "0" and spot[r]["lendingLimit"] == "0" for r in spot)
    assert q["cpu-burst"][GPU]["nominalQuota"] == "0"  # a CPU pool lends no GPUs
    for cq in cqs.values():
        spec = cq["spec"]
        assert spec["cohortName"] == queueing.COHORT
        assert spec["preemption"] == {
            "withinClusterQueue": "LowerPriority",  # a team's urgent sweep preempts its own low ones
            "reclaimWithinCohort": "Any",  # its share taken back from borrowers
            "borrowWithinCohort": {"policy": "Never"},  # never another team's runs within that team's share
        }
        assert spec["flavorFungibility"]["whenCanBorrow"] == "MayStopSearch"
    assert cqs["nlp"]["spec"]["namespaceSelector"] == {"matchLabels": {"herd.dev/team": "nlp"}}


def _quotas(plan):
    return {o["metadata"]["namespace"]: o["spec"]["hard"] for o in plan.kubernetes_objects("ResourceQuota")}


def test_each_team_quota_holds_all_kueue_may_admit_to_the_team(example_plan):
    # GIVEN vision (quota 64 CPUs, 256Gi, 8 GPUs; on-prem share 32, 128Gi, 6) and nlp (quota 64, 256Gi, 4 GPUs;
    # share 48, 192Gi, 3) in one cohort
    quotas = _quotas(example_plan)
    # THEN each namespace's ResourceQuota is the team's quota plus the other team's on-prem share it may borrow, so
    # Kueue, not the quota, is what limits a borrowing team (pods stay the team's)
    assert quotas == {
        "vision": {
            "requests.cpu": "112",
            "requests.memory": "448Gi",
            "limits.memory": "448Gi",
            f"requests.{GPU}": "11",
            "pods": "200",
        },
        "nlp": {
            "requests.cpu": "96",
            "requests.memory": "384Gi",
            "limits.memory": "384Gi",
            f"requests.{GPU}": "10",
            "pods": "200",
        },
    }


def test_the_quota_and_the_queues_agree_on_what_a_team_may_borrow(example_plan):
    # The GPUs a team may hold: its own nominal quota in every flavor, and what the other queues lend on-prem (an
    # entry without lendingLimit lends all of it); the ResourceQuota must allow exactly that.
    cqs = _objects(example_plan, "ClusterQueue")
    quotas = _quotas(example_plan)

    def gpus(name, *, lent_only=False):
        return sum(
            int(r[GPU]["nominalQuota"])
            for _, r in _flavor_quotas(cqs[name])
            if not (lent_only and r[GPU].get("lendingLimit") == "0")
        )

    for team in cqs:
        lent = sum(gpus(other, lent_only=True) for other in cqs if other != team)
        assert int(quotas[team][f"requests.{GPU}"]) == gpus(team) + lent, team


def test_without_kueue_the_quota_is_the_teams(example_values):
    from infra.addons.teams import quota_hard

    vision = config.load(example_values).teams[0]
    assert quota_hard(vision) == {
        "requests.cpu": "64",
        "requests.memory": "256Gi",
        "limits.memory": "256Gi",
        f"requests.{GPU}": "8",
        "pods": "200",
    }


def test_a_local_queue_in_each_team_namespace(example_plan):
    lqs = example_plan.kubernetes_objects("LocalQueue")
    assert {(o["metadata"]["namespace"], o["metadata"]["name"], o["spec"]["clusterQueue"]) for o in lqs} == {
        ("vision", "vision", "vision"),
        ("nlp", "nlp", "nlp"),
    }


def test_no_cloud_cap_means_on_prem_only(example_values, planner):
    values = copy.deepcopy(example_values)
    for team in values["herd:teams"]:
        team.pop("cloud", None)
    cq = _objects(planner(values), "ClusterQueue")["vision"]
    q = dict(_flavor_quotas(cq))
    assert q["onprem-gpu"][GPU]["nominalQuota"] == "8"
    # No cloud flavor at all (one at nominal 0, neither lent nor borrowed, would admit nothing either), so adding a
    # pool leaves a capless team's queue as it is
    assert list(q) == ["onprem", "onprem-gpu"]


def test_a_cap_on_one_resource_opens_every_cloud_flavor_to_it(example_values, planner):
    values = copy.deepcopy(example_values)
    values["herd:teams"] = [{"name": "vision", "cloud": {"cpu": "8", "memory": "32Gi"}}]
    q = dict(_flavor_quotas(_objects(planner(values), "ClusterQueue")["vision"]))
    assert list(q) == ["onprem", "onprem-gpu", "gpu-a10g-spot", "cpu-burst"]
    assert {r: q["gpu-a10g-spot"][r]["nominalQuota"] for r in q["gpu-a10g-spot"]} == {
        "cpu": "8",
        "memory": "32Gi",
        GPU: "0",
    }


def test_every_committed_stack_has_its_queues(any_plan):
    teams = {o["metadata"]["name"] for o in any_plan.kubernetes_objects("Namespace")} - {"herd-system"}
    assert {o["metadata"]["name"] for o in any_plan.kubernetes_objects("ClusterQueue")} >= teams - {"kube-system"}


def test_herd_plan_shows_the_queue_order_and_caps(example_plan):
    from rich.console import Console

    from infra.plan import render

    console = Console(width=400, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(render(example_plan))
    text = console.export_text()
    assert "ClusterQueue queue-vision  vision (cohort herd): onprem " in text
    assert "→ gpu-a10g-spot cap cpu=32,memory=128Gi,gpu=2 →" in text
    assert "LocalQueue queue-vision-local  vision/vision → ClusterQueue vision" in text


@pytest.mark.parametrize(
    ("team", "key", "fragment"),
    [
        ({"cloud": {"gpu": 9}}, "herd:teams[0].cloud.gpu", "more than the quota's gpu (8)"),
        ({"cloud": {"cpu": "65"}}, "herd:teams[0].cloud.cpu", "more than the quota's cpu (64)"),
        ({"cloud": {"memory": "1Ti"}}, "herd:teams[0].cloud.memory", "more than the quota's memory"),
        ({"cloud": {"cpu": "lots"}}, "herd:teams[0].cloud.cpu", "not a Kubernetes quantity"),
        ({"cloud": {"gpu": -1}}, "herd:teams[0].cloud.gpu", "greater than or equal to 0"),
        ({"cloud": {"gpus": 1}}, "herd:teams[0].cloud.gpus", "unknown field; did you mean gpu?"),
    ],
)
def test_a_bad_cloud_cap_is_one_line_naming_the_key(example_values, team, key, fragment):
    values = copy.deepcopy(example_values)
    values["herd:teams"][0] = {**values["herd:teams"][0], **team}
    with pytest.raises(config.ConfigError) as info:
        config.load(values)
    assert info.value.key == key, str(info.value)
    assert fragment in info.value.problem, str(info.value)
    assert "\n" not in str(info.value)


def test_a_cloud_cap_without_burst_pools_is_refused(example_values):
    values = copy.deepcopy(example_values)
    values["herd:pools"] = []
    with pytest.raises(config.ConfigError) as info:
        config.load(values)
    assert info.value.key == "herd:teams[0].cloud" and "needs burst pools" in info.value.problem
