"""The nodes a site registers, as the playbooks and the Pulumi program give them their labels and taints.

One derivation, used by the cross-part tests (every example spec can land on some node of the example site) and
by the local real cluster (its simulated nodes are the example site's). On-prem servers come from an Ansible
inventory (``herd_node_pool``, ``herd_node_tier``, extra ``herd_node_labels`` / ``herd_node_taints``, the control
plane role's taints, the GPU taint on GPU servers); cloud nodes from the stack's burst pools.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from herd_local.paths import PLAYBOOK_ROLES
from ml_jobs import taxonomy

__all__ = ["NodeClass", "cloud_node_classes", "on_prem_node_classes"]


@dataclass(frozen=True)
class NodeClass:
    """Nodes of a site that register with the same labels and taints.

    Attributes:
        name: ``<group>/<host>`` for an on-prem server, ``pool/<name>`` for a burst pool.
        host: the inventory host name, or the pool name.
        labels: the node labels (taxonomy first, then the extras).
        taints: the node taints.
    """

    name: str
    host: str
    labels: dict[str, str]
    taints: list[dict[str, str]]


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text()) if path.exists() else {}


def on_prem_node_classes(inventory: Path) -> list[NodeClass]:
    """Per host of the inventory directory ``inventory``, the labels and taints the playbooks give it."""
    site_vars = _yaml(inventory / "group_vars" / "all.yml")
    control_plane_taints = _yaml(PLAYBOOK_ROLES / "control_plane" / "defaults" / "main.yml")[
        "control_plane_taints"
    ]
    groups = _yaml(inventory / "hosts.yml")["all"]["children"]
    classes = []
    for group, members in groups.items():
        group_vars = _yaml(inventory / "group_vars" / f"{group}.yml") or {}
        for host, host_vars in ((members or {}).get("hosts") or {}).items():
            hv = {**site_vars, **group_vars, **(host_vars or {})}
            labels = {
                taxonomy.LABELS["location"].key: "onprem",
                taxonomy.LABELS["pool"].key: hv["herd_node_pool"],
                taxonomy.LABELS["tier"].key: hv["herd_node_tier"],
                **hv["herd_node_labels"],
            }
            taints = list(hv["herd_node_taints"])
            if group == "control_plane":
                taints += control_plane_taints
            if hv["herd_node_tier"] == "gpu":
                taints.append(taxonomy.GPU_TAINT.as_node_taint())
            classes.append(NodeClass(f"{group}/{host}", host, labels, taints))
    return classes


def cloud_node_classes(stack_config: dict[str, Any]) -> list[NodeClass]:
    """Per burst pool of the stack config (full keys to values), the labels and taints infra gives its nodes.

    Needs the ``infra`` extra (pulumi-aws).
    """
    from infra import burst_pool
    from infra import config as stack

    cfg = stack.load(stack_config)
    return [
        NodeClass(f"pool/{pool.name}", pool.name, burst_pool.node_labels(cfg, pool), burst_pool.node_taints(pool))
        for pool in cfg.pools
    ]
