"""The team queues the program declares, through the real API server with Kueue's CRDs and its real controller and
webhooks (the local real cluster runs Kueue v0.17.0 built from its module, as its own integration tests run it)."""

from __future__ import annotations

import copy
import json
import time

import pytest

from herd_local.cluster import LocalCluster
from herd_local.errors import LocalClusterError
from infra.plan import run_plan
from tests.infra.helpers import ALL_STACKS, stack_values

pytestmark = pytest.mark.real_cluster


def _get(cluster: LocalCluster, *args: str) -> dict:
    return json.loads(cluster.kubectl("get", *args, "-o", "json"))


def test_the_example_stacks_queues_are_active_in_kueue(real_control_plane: LocalCluster) -> None:
    # GIVEN the example stack's flavors and queues, applied by the local cluster from the program's plan
    # THEN Kueue's controller finds every ClusterQueue's flavors and can admit to it
    deadline = time.monotonic() + 30
    while True:
        cqs = _get(real_control_plane, "clusterqueues")["items"]
        active = {
            cq["metadata"]["name"]: any(
                c["type"] == "Active" and c["status"] == "True" for c in cq.get("status", {}).get("conditions", [])
            )
            for cq in cqs
            if cq["metadata"]["name"] in ("vision", "nlp")  # not the tests' own, which may be going away
        }
        if active == {"vision": True, "nlp": True} or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert active == {"vision": True, "nlp": True}


@pytest.mark.parametrize("stack", ALL_STACKS, ids=lambda p: p.stem)
def test_every_stacks_queues_pass_kueues_webhooks(real_control_plane: LocalCluster, stack) -> None:
    values = stack_values(stack)
    objects = [o for o in run_plan(values).kubernetes_objects() if o["apiVersion"].startswith("kueue.x-k8s.io/")]
    # The LocalQueues into the example site's namespaces (the edge stacks' teams have none here); as the real
    # cluster holds no LocalQueue of its own (LocalCluster: team_queues=False), a dry run shows the server's word.
    namespaces = {o["metadata"]["name"] for o in _get(real_control_plane, "namespaces")["items"]}
    objects = [o for o in objects if o["kind"] != "LocalQueue" or o["metadata"]["namespace"] in namespaces]
    if not values.get("herd:teams"):  # no team, nothing to queue for: no Kueue at all
        assert objects == []
        return
    assert {"ResourceFlavor", "ClusterQueue"} <= {o["kind"] for o in objects}
    real_control_plane.kubectl(
        "apply", "--server-side", "--dry-run=server", "--force-conflicts", "--field-manager=herd-test", "-f", "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": objects}),
    )  # fmt: skip


def test_kueues_webhook_refuses_a_queue_the_check_above_would_let_through(
    real_control_plane: LocalCluster, example_plan
) -> None:
    """The check can fail: a flavor that does not list every covered resource is refused by Kueue itself."""
    cq = copy.deepcopy(next(o for o in example_plan.kubernetes_objects("ClusterQueue")))
    cq["metadata"]["name"] = "broken"
    cq["spec"]["resourceGroups"][0]["flavors"][0]["resources"].pop()
    with pytest.raises(LocalClusterError) as info:
        real_control_plane.kubectl("create", "--dry-run=server", "-f", "-", stdin=json.dumps(cq))
    assert "resourceGroups" in str(info.value)
