"""Team queues: Kueue, and the queueing objects herd derives from the stack config and the taxonomy.

- ResourceFlavors: ``onprem`` (on-prem nodes, by ``herd.dev/location``), ``onprem-gpu`` (on-prem GPU nodes: the
  same label and the GPU taint, so only workloads tolerating it land there), and one per burst pool (its labels and
  taints, as its nodes register with them), GPU pools carrying their product label.
- Per team a ClusterQueue, all in one cohort: on-prem flavors first, cloud flavors after (only for a team with a
  cloud cap), spot before on-demand as the autoscaler's expander orders them (Kueue tries a resource group's
  flavors in order). On-prem nominal quota is
  the team's share (its quota minus its cloud cap), borrowable by the other teams while idle and reclaimed when the
  team needs it back; every cloud flavor's nominal quota is the team's cloud cap, neither lent nor borrowed, so the
  cap holds.
- Per team namespace a LocalQueue pointing to the team's ClusterQueue.

Kueue does not see the namespace's ResourceQuota, so where Kueue runs the quota must hold all that Kueue may admit
to the team (:func:`admissible`: its quota and the other teams' on-prem shares it may borrow); otherwise Kueue
admits pods the quota refuses and holds the borrowed quota for them. Kueue is the limiter; the ResourceQuota is the
backstop for Jobs that bypass the queue.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
import yaml

from infra import burst_pool
from infra.addons import _helm
from infra.addons.charts import KUEUE, Chart
from infra.addons.teams import TEAM_LABEL
from infra.config import Pool, StackConfig, Team
from ml_jobs import queueing, taxonomy
from ml_jobs.quantity import format_quantity, parse_quantity

__all__ = [
    "KUEUE_NAMESPACE",
    "ONPREM_FLAVOR",
    "ONPREM_GPU_FLAVOR",
    "RESOURCES",
    "KueueQueues",
    "admissible",
    "cloud_flavors",
    "cluster_queue_spec",
    "flavors",
    "kueue_values",
    "manager_config",
    "onprem_share",
]

KUEUE_NAMESPACE = "kueue-system"
ONPREM_FLAVOR = queueing.ONPREM_FLAVOR
ONPREM_GPU_FLAVOR = queueing.ONPREM_GPU_FLAVOR
# What a ClusterQueue's one resource group covers: what runs request.
RESOURCES = ("cpu", "memory", taxonomy.GPU_RESOURCE)
_MANAGED = {"app.kubernetes.io/managed-by": "herd"}


def manager_config() -> dict[str, Any]:
    """Kueue's Configuration: batch/v1 Jobs are the one integration herd uses. In the team namespaces (by their
    team label) every Job is Kueue's, one without a queue name too, which Kueue holds suspended and never admits:
    the second line behind the admission policy that refuses it (``infra.addons.queue_policy``). Elsewhere Kueue
    manages nothing: since v0.15 (``ManagedJobsNamespaceSelectorAlwaysRespected``) the selector holds for Jobs
    that name a queue too."""
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2",
        "kind": "Configuration",
        "manageJobsWithoutQueueName": True,
        "managedJobsNamespaceSelector": {"matchExpressions": [{"key": TEAM_LABEL, "operator": "Exists"}]},
        "integrations": {"frameworks": ["batch/job"]},
    }


def kueue_values(cfg: StackConfig, chart: Chart = KUEUE) -> dict[str, Any]:
    """Values of the kueue chart: the pinned release's image, herd's Configuration, the control plane tolerated."""
    return {
        "controllerManager": {
            "manager": {"image": {"repository": "registry.k8s.io/kueue/kueue", "tag": f"v{chart.version}"}},
            "tolerations": [_helm.CONTROL_PLANE_TOLERATION],
        },
        "managerConfig": {"controllerManagerConfigYaml": yaml.safe_dump(manager_config(), sort_keys=False)},
    }


# ------------------------------------------------------------------------------------------------ flavors
def _location(where: str) -> dict[str, str]:
    return {taxonomy.LABELS["location"].key: where}


def onprem_flavors() -> list[dict[str, Any]]:
    """The on-prem flavors: CPU nodes, then GPU nodes (which carry the GPU taint)."""
    return [
        {"name": ONPREM_FLAVOR, "nodeLabels": _location("onprem")},
        {
            "name": ONPREM_GPU_FLAVOR,
            "nodeLabels": _location("onprem"),
            "nodeTaints": [taxonomy.GPU_TAINT.as_node_taint()],
        },
    ]


def _cloud_order(cfg: StackConfig) -> list[Pool]:
    """Burst pools in the order Kueue should try them: the autoscaler's expander priority (spot first), then as
    the stack lists them."""
    return sorted(cfg.pools, key=lambda p: -p.expander_priority)


def cloud_flavors(cfg: StackConfig) -> list[dict[str, Any]]:
    """One flavor per burst pool, named after it: the labels and taints its nodes register with."""
    out = []
    for pool in _cloud_order(cfg):
        labels = burst_pool.node_labels(cfg, pool)
        keep = (taxonomy.LABELS["location"].key, taxonomy.LABELS["pool"].key, taxonomy.LABELS["gpu_product"].key)
        flavor: dict[str, Any] = {"name": pool.name, "nodeLabels": {k: v for k, v in labels.items() if k in keep}}
        if taints := burst_pool.node_taints(pool):
            flavor["nodeTaints"] = taints
        out.append(flavor)
    return out


def flavors(cfg: StackConfig) -> list[dict[str, Any]]:
    """Every flavor, in the order each ClusterQueue lists them."""
    return onprem_flavors() + cloud_flavors(cfg)


# ------------------------------------------------------------------------------------------------ queues
def _format(amounts: dict[str, Decimal]) -> dict[str, str]:
    return {
        "cpu": format_quantity(amounts["cpu"], binary=False),
        "memory": format_quantity(amounts["memory"], binary=True),
        taxonomy.GPU_RESOURCE: str(int(amounts[taxonomy.GPU_RESOURCE])),
    }


def _total(team: Team) -> dict[str, Decimal]:
    q = team.quota
    return {
        "cpu": parse_quantity(q.cpu),
        "memory": parse_quantity(q.memory),
        taxonomy.GPU_RESOURCE: Decimal(q.gpu),
    }


def _onprem(team: Team) -> dict[str, Decimal]:
    c = team.cloud
    cap = {"cpu": parse_quantity(c.cpu), "memory": parse_quantity(c.memory), taxonomy.GPU_RESOURCE: Decimal(c.gpu)}
    return {name: amount - cap[name] for name, amount in _total(team).items()}


def onprem_share(team: Team) -> dict[str, str]:
    """The team's on-prem nominal quota: its quota minus its cloud cap."""
    return _format(_onprem(team))


def admissible(cfg: StackConfig, team: Team) -> dict[str, str]:
    """The most Kueue may admit to the team, per resource: its quota (on-prem share and cloud cap) and what it may
    borrow on-prem, every other team's on-prem share (all lent while idle). What the namespace's ResourceQuota
    must allow where Kueue runs."""
    out = _total(team)
    for other in cfg.teams:
        if other.name != team.name:
            for name, amount in _onprem(other).items():
                out[name] += amount
    return _format(out)


def cloud_cap(team: Team) -> dict[str, str]:
    """The team's cloud cap, per resource."""
    return {"cpu": team.cloud.cpu, "memory": team.cloud.memory, taxonomy.GPU_RESOURCE: str(team.cloud.gpu)}


def _has_cap(team: Team) -> bool:
    return any(parse_quantity(str(amount)) > 0 for amount in cloud_cap(team).values())


def _quotas(amounts: dict[str, str], *, closed: bool) -> list[dict[str, Any]]:
    out = []
    for name in RESOURCES:
        entry: dict[str, Any] = {"name": name, "nominalQuota": amounts[name]}
        if closed:  # the cap is the team's own: nothing borrowed on top, nothing lent away
            entry.update(borrowingLimit="0", lendingLimit="0")
        out.append(entry)
    return out


def cluster_queue_spec(cfg: StackConfig, team: Team) -> dict[str, Any]:
    """The team's ClusterQueue: on-prem flavors (its share) before cloud flavors (its cap), in the herd cohort."""
    onprem = onprem_share(team)
    no_gpu = {**onprem, taxonomy.GPU_RESOURCE: "0"}
    flavor_quotas = [
        {"name": ONPREM_FLAVOR, "resources": _quotas(no_gpu, closed=False)},
        {"name": ONPREM_GPU_FLAVOR, "resources": _quotas(onprem, closed=False)},
    ]
    cap = cloud_cap(team)
    # A team without a cloud cap lists no cloud flavor: at nominal 0, neither lent nor borrowed, one admits
    # nothing, and leaving it out keeps the team's queue as it was when pools are added (a site gaining its
    # cloud, the "extend" path, changes no queue until a team is given a cap).
    pools = zip(cloud_flavors(cfg), _cloud_order(cfg), strict=True) if _has_cap(team) else []
    for flavor, pool in pools:
        amounts = cap if pool.gpu is not None else {**cap, taxonomy.GPU_RESOURCE: "0"}
        flavor_quotas.append({"name": flavor["name"], "resources": _quotas(amounts, closed=True)})
    return {
        "cohortName": queueing.COHORT,
        "namespaceSelector": {"matchLabels": {TEAM_LABEL: team.name}},
        "queueingStrategy": "BestEffortFIFO",
        "resourceGroups": [{"coveredResources": list(RESOURCES), "flavors": flavor_quotas}],
        # Borrowing idle on-prem quota, and taking back a team's own share from borrowers, come before the next
        # (cloud) flavor: the servers already paid for first.
        "flavorFungibility": {"whenCanBorrow": "MayStopSearch", "whenCanPreempt": "MayStopSearch"},
        # Priority counts within a team: a higher-priority sweep preempts the team's own lower-priority ones. A
        # team takes its share back from borrowers whatever their priority. A borrowing sweep never preempts
        # another team's runs within that team's own share, however urgent: a share is its team's.
        "preemption": {
            "withinClusterQueue": "LowerPriority",
            "reclaimWithinCohort": "Any",
            "borrowWithinCohort": {"policy": "Never"},
        },
    }


def local_queue_spec(team: Team) -> dict[str, Any]:
    """The LocalQueue in the team's namespace."""
    return {"clusterQueue": queueing.queue_name(team.name)}


class KueueQueues(pulumi.ComponentResource):
    """Kueue (pinned chart) and herd's flavors and team queues.

    Attributes:
        release: the Kueue Helm release.
    """

    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions) -> None:
        super().__init__("herd:addons:KueueQueues", name, None, opts)
        self.release = _helm.release(
            "kueue", KUEUE, KUEUE_NAMESPACE, kueue_values(cfg), _helm.child_opts(self, opts), create_namespace=True
        )
        after = _helm.child_opts(self, opts, depends_on=[self.release])
        flavor_objects = _flavors(cfg, after)
        _queues(cfg, pulumi.ResourceOptions.merge(after, pulumi.ResourceOptions(depends_on=flavor_objects)))
        self.register_outputs({})


def _custom(name: str, kind: str, obj: str, spec: dict[str, Any], opts: pulumi.ResourceOptions, **meta: Any):
    return k8s.apiextensions.CustomResource(
        name,
        api_version=queueing.API_VERSION,
        kind=kind,
        metadata=k8s.meta.v1.ObjectMetaArgs(name=obj, labels=dict(_MANAGED), **meta),
        spec=spec,
        opts=opts,
    )


def _flavors(cfg: StackConfig, opts: pulumi.ResourceOptions) -> list[pulumi.Resource]:
    return [
        _custom(
            f"flavor-{f['name']}", "ResourceFlavor", f["name"], {k: v for k, v in f.items() if k != "name"}, opts
        )
        for f in flavors(cfg)
    ]


def _queues(cfg: StackConfig, opts: pulumi.ResourceOptions) -> None:
    for team in cfg.teams:
        queue = queueing.queue_name(team.name)
        cq = _custom(f"queue-{team.name}", "ClusterQueue", queue, cluster_queue_spec(cfg, team), opts)
        _custom(
            f"queue-{team.name}-local",
            "LocalQueue",
            queue,
            local_queue_spec(team),
            pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[cq])),
            namespace=team.name,
        )
