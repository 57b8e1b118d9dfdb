"""Do the teams' on-prem shares fit the on-prem servers the cluster has now?

Kueue admits by quota, not by free nodes: where the teams' nominal quotas in an on-prem flavor add up to more
than that flavor's servers hold, Kueue admits a sweep on-prem that then waits for a server, instead of sending it
to the cloud. The servers' sizes have one owner, the Nodes' allocatable (the kubelet and the GPU device plugin
report them), so this is checked against the cluster, not against a copy of the sizes in the inventory: after
``join`` or ``remove_node``, after a quota change, or when a server is down. ``herd-ops check-shares`` runs it.

A flavor's servers are the schedulable, Ready Nodes that carry its labels and exactly its taints (those that keep
pods away: ``NoSchedule``, ``NoExecute``): a server with a taint of its own (kept for one team, the control plane)
takes no one else's share. Decided from plain data (:func:`check`); the requests are three lists.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ml_jobs import queueing, taxonomy
from ml_jobs.quantity import format_quantity, parse_quantity

__all__ = ["Fit", "check", "read_cluster", "servers_of"]

_REPELLING = {"NoSchedule", "NoExecute"}


@dataclass(frozen=True)
class Fit:
    """One resource of one on-prem flavor: the teams' shares of it against what its servers hold.

    Attributes:
        flavor: the ResourceFlavor.
        resource: ``cpu``, ``memory``, ``nvidia.com/gpu``.
        shares: each team's nominal quota (its ClusterQueue's), by team name.
        capacity: what the flavor's servers hold (the sum of their allocatable).
        servers: the flavor's servers, by name.
    """

    flavor: str
    resource: str
    shares: dict[str, Decimal]
    capacity: Decimal
    servers: tuple[str, ...]

    @property
    def total(self) -> Decimal:
        return sum(self.shares.values(), Decimal(0))

    @property
    def fits(self) -> bool:
        return self.total <= self.capacity

    def _q(self, value: Decimal) -> str:
        return format_quantity(value, binary=self.resource == "memory")

    def __str__(self) -> str:
        each = ", ".join(f"{team} {self._q(v)}" for team, v in self.shares.items())
        held = ", ".join(self.servers) if self.servers else "no schedulable server"
        total, capacity = self._q(self.total), self._q(self.capacity)
        if self.fits:
            return f"{self.flavor} {self.resource}: the teams' shares {total} ({each}) fit in {capacity} ({held})"
        return (
            f"{self.flavor} {self.resource}: the teams' shares add up to {total} ({each}) but its servers "
            f"hold {capacity} ({held}); Kueue would admit sweeps on-prem that then wait for "
            "a server instead of going to the cloud"
        )


def _taints(items: list[dict[str, Any]] | None) -> set[tuple[str, str, str]]:
    return {(t["key"], t.get("value", ""), t["effect"]) for t in items or [] if t.get("effect") in _REPELLING}


def _schedulable(node: dict[str, Any]) -> bool:
    if (node.get("spec") or {}).get("unschedulable"):
        return False
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def servers_of(flavor: dict[str, Any], nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The schedulable, Ready Nodes with the flavor's labels and exactly its (repelling) taints."""
    spec = flavor.get("spec") or {}
    labels = spec.get("nodeLabels") or {}
    taints = _taints(spec.get("nodeTaints"))
    return [
        n
        for n in nodes
        if _schedulable(n)
        and all(((n.get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in labels.items())
        and _taints((n.get("spec") or {}).get("taints")) == taints
    ]


def _onprem(flavor: dict[str, Any]) -> bool:
    labels = (flavor.get("spec") or {}).get("nodeLabels") or {}
    return labels.get(taxonomy.LABELS["location"].key) == "onprem"


def check(
    flavors: list[dict[str, Any]], cluster_queues: list[dict[str, Any]], nodes: list[dict[str, Any]]
) -> list[Fit]:
    """Per on-prem flavor and resource that some team has a share of (ClusterQueues being deleted left out): the
    shares against the servers."""
    shares: dict[tuple[str, str], dict[str, Decimal]] = defaultdict(dict)
    for cq in cluster_queues:
        if cq["metadata"].get("deletionTimestamp"):  # being deleted: Kueue admits nothing more to it
            continue
        team = cq["metadata"]["name"]
        for group in (cq.get("spec") or {}).get("resourceGroups") or []:
            for fq in group.get("flavors") or []:
                for r in fq.get("resources") or []:
                    shares[(fq["name"], r["name"])][team] = parse_quantity(str(r["nominalQuota"]))
    fits = []
    for flavor in flavors:
        if not _onprem(flavor):
            continue
        name = flavor["metadata"]["name"]
        servers = servers_of(flavor, nodes)
        for (f, resource), by_team in shares.items():
            if f != name or not any(by_team.values()):
                continue
            capacity = sum(
                (parse_quantity(str(((s.get("status") or {}).get("allocatable") or {}).get(resource, "0")))
                 for s in servers),
                Decimal(0),
            )  # fmt: skip
            names = tuple(sorted(s["metadata"]["name"] for s in servers))
            fits.append(Fit(name, resource, dict(sorted(by_team.items())), capacity, names))
    return fits


def read_cluster(kubeconfig: str | None = None) -> list[Fit]:
    """:func:`check` on the cluster of ``kubeconfig`` (default: the usual kubeconfig): ResourceFlavors,
    ClusterQueues and Nodes, one list each (cluster-wide reads: an operator's, not a submitter's).

    Raises:
        OpsError: no kubeconfig, the API server not reachable, or a list refused (one line).
    """
    import urllib3
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException
    from kubernetes.config.config_exception import ConfigException

    from herd_ops._runner import OpsError

    try:
        api_client = config.new_client_from_config(config_file=kubeconfig)
    except (ConfigException, OSError) as e:
        raise OpsError(f"no cluster to check: {e}") from e
    custom = client.CustomObjectsApi(api_client)
    reads = {
        "resourceflavors": lambda: custom.list_cluster_custom_object(
            queueing.GROUP, queueing.VERSION, "resourceflavors", _preload_content=False
        ),
        "clusterqueues": lambda: custom.list_cluster_custom_object(
            queueing.GROUP, queueing.VERSION, "clusterqueues", _preload_content=False
        ),
        "nodes": lambda: client.CoreV1Api(api_client).list_node(_preload_content=False),
    }
    found: dict[str, list[dict[str, Any]]] = {}
    try:
        for what, read in reads.items():
            try:
                found[what] = json.loads(read().data).get("items") or []
            except ApiException as e:
                if e.status == 404 and what != "nodes":  # no Kueue: no shares to check
                    found[what] = []
                    continue
                raise OpsError(f"cannot list {what}: {e.status} {e.reason}") from e
            except urllib3.exceptions.HTTPError as e:
                raise OpsError(f"cannot reach the API server {api_client.configuration.host}: {e}") from e
    finally:
        api_client.close()
    return check(found["resourceflavors"], found["clusterqueues"], found["nodes"])
