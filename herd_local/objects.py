"""What the local cluster holds: the Pulumi program's in-cluster objects for the example stack (from its offline
plan), a Node per server and burst pool of the example site with the labels and taints the playbooks and infra
give them, and the stand-in volumes for the results claims (NFS cannot run here)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from herd_local import gpu_facts
from herd_local.paths import EXAMPLE_INVENTORY, EXAMPLE_STACK
from herd_local.site import NodeClass, cloud_node_classes, on_prem_node_classes
from ml_jobs import taxonomy

__all__ = [
    "REAL_NODE_GROUP",
    "SIMULATED_HARDWARE",
    "SIMULATED_NODE_ANNOTATION",
    "STAND_IN_LABEL",
    "Hardware",
    "node_objects",
    "plan_objects",
    "real_node_class",
    "stack_values",
    "stand_in_volumes",
]

SIMULATED_NODE_ANNOTATION = {"kwok.x-k8s.io/node": "fake"}
STAND_IN_LABEL = {"herd.dev/stand-in": "nfs"}
# The example site's server that runs as a real node (the first CPU server of the inventory); the rest stay KWOK's.
REAL_NODE_GROUP = "cpu_nodes"


@dataclass(frozen=True)
class Hardware:
    """What a simulated node has: the inventory and the stack say a node's identity, not its size."""

    cpu: str
    memory: str
    gpus: int = 0
    gpu_product: str = ""
    gpu_memory_mib: int = 0

    @classmethod
    def with_gpus(cls, cpu: str, memory: str, fixture: str) -> Hardware:
        """A server with the GPUs of GPU fixture ``fixture`` (herd_local.gpu_facts), labelled as GFD labelled
        them there."""
        labels = gpu_facts.load(fixture).gfd_labels
        product, count, mem = gpu_facts.HERD_GPU_LABELS
        return cls(cpu, memory, int(labels[count]), labels[product], int(labels[mem]))


# Per pool of the example site. On-prem GPU labels are what GPU feature discovery wrote on a server with those GPUs
# (tests/fixtures/gpu); a burst pool's come from its instance type (Pulumi.example.yaml), as infra labels them.
SIMULATED_HARDWARE: dict[str, Hardware] = {
    "control-plane": Hardware("8", "32Gi"),
    "onprem-cpu": Hardware("64", "256Gi"),
    "onprem-gpu": Hardware.with_gpus("32", "256Gi", "h100-80gb-hbm3-x4"),
    "onprem-a100": Hardware.with_gpus("32", "256Gi", "a100-sxm4-80gb-x4"),
    "gpu-a10g-spot": Hardware("8", "32Gi", 1, "", 23028),
    "cpu-burst": Hardware("32", "64Gi"),
}


# ------------------------------------------------------------------------------------------------ what it holds
def stack_values() -> dict[str, Any]:
    from infra.plan import load_stack_file

    return load_stack_file(EXAMPLE_STACK)


# Apply order: what other objects live in or refer to first; bindings after what they bind.
_KIND_ORDER = (
    "Namespace",
    "PriorityClass",
    "StorageClass",
    "ValidatingAdmissionPolicy",
    "ResourceFlavor",
    "ClusterQueue",
)
_LAST = ("ValidatingAdmissionPolicyBinding", "RoleBinding")


def _rank(obj: dict[str, Any]) -> int:
    kind = obj["kind"]
    if kind in _KIND_ORDER:
        return _KIND_ORDER.index(kind)
    return len(_KIND_ORDER) + 1 + _LAST.index(kind) if kind in _LAST else len(_KIND_ORDER)


def plan_objects(values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """The Kubernetes objects the Pulumi program declares for the stack (default: the example stack), from its
    offline plan, in an order the API server accepts them in. Helm releases are not objects (their charts' images
    cannot run here)."""
    from infra.plan import run_plan

    plan = run_plan(values if values is not None else stack_values())
    return sorted(plan.kubernetes_objects(), key=_rank)


def node_objects(
    version: str, values: dict[str, Any] | None = None, *, real: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """A Node per host of the example inventory and one per burst pool of the stack, with the labels and taints
    the playbooks and infra give them, the capacity of :data:`SIMULATED_HARDWARE`, managed by KWOK; none for the
    hosts named in ``real`` (a real kubelet registers those)."""
    classes = on_prem_node_classes(EXAMPLE_INVENTORY) + cloud_node_classes(
        values if values is not None else stack_values()
    )
    nodes = []
    for c in classes:
        pool = c.labels[taxonomy.LABELS["pool"].key]
        hw = SIMULATED_HARDWARE[pool]
        name = c.host if not c.name.startswith("pool/") else f"{c.host}-1"
        if name in real:
            continue
        labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}
        labels.update(c.labels)
        capacity = {"cpu": hw.cpu, "memory": hw.memory, "pods": "110", "ephemeral-storage": "500Gi"}
        if hw.gpus:
            capacity[taxonomy.GPU_RESOURCE] = str(hw.gpus)
            product = labels.get(taxonomy.LABELS["gpu_product"].key) or hw.gpu_product
            labels[taxonomy.LABELS["gpu_product"].key] = product
            labels[taxonomy.LABELS["gpu_count"].key] = str(hw.gpus)
            labels[taxonomy.LABELS["gpu_memory"].key] = str(hw.gpu_memory_mib)
        if name == "cp-01":
            labels["node-role.kubernetes.io/control-plane"] = ""
        nodes.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "labels": labels, "annotations": dict(SIMULATED_NODE_ANNOTATION)},
                "spec": {"taints": c.taints},
                "status": {
                    "capacity": capacity,
                    "allocatable": capacity,
                    "nodeInfo": {
                        "kubeletVersion": version,
                        "kubeProxyVersion": version,
                        "containerRuntimeVersion": "kwok",
                        "operatingSystem": "linux",
                        "architecture": "amd64",
                        "osImage": "KWOK simulated node",
                        "kernelVersion": "",
                        "bootID": "",
                        "machineID": "",
                        "systemUUID": "",
                    },
                },
            }
        )
    return nodes


def stand_in_volumes(objects: Iterable[dict[str, Any]], root: Path) -> list[dict[str, Any]]:
    """A hostPath PersistentVolume pre-bound to each results claim: the stand-in for the NFS provisioner."""
    volumes = []
    for claim in objects:
        if claim["kind"] != "PersistentVolumeClaim":
            continue
        meta, spec = claim["metadata"], claim["spec"]
        name = f"{meta['namespace']}-{meta['name']}"
        volumes.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolume",
                "metadata": {"name": name, "labels": dict(STAND_IN_LABEL)},
                "spec": {
                    "capacity": {"storage": spec["resources"]["requests"]["storage"]},
                    "accessModes": spec["accessModes"],
                    "storageClassName": spec["storageClassName"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "claimRef": {"namespace": meta["namespace"], "name": meta["name"]},
                    "hostPath": {"path": str(root / name), "type": "DirectoryOrCreate"},
                },
            }
        )
    return volumes


def real_node_class() -> NodeClass:
    """The example site's server that runs as the real node: the first of the inventory's CPU servers."""
    return next(c for c in on_prem_node_classes(EXAMPLE_INVENTORY) if c.name.startswith(f"{REAL_NODE_GROUP}/"))
