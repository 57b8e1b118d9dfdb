"""Shared results storage: nfs-subdir-external-provisioner carves one directory of the NAS export per claim, and
herd's StorageClass decides where and that data outlives its claim (reclaim policy Retain; archive on delete should
anyone switch to Delete).

Where is ``<namespace>/<claim name>`` (:data:`PATH_PATTERN`): no part a user controls. The provisioner also reads
a claim annotation, ``nfs.io/storage-path``, into a pattern that names it, without sanitising it, so a claim
annotated ``../vision/results`` would land in another team's directory; herd's pattern names no annotation. A
namespace is not the user's to choose, and a claim name is a DNS subdomain (no ``/``, no ``..``); in a team
namespace the only claim of this class is the team's own (infra/addons/team_policy.py).
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from infra.addons import _helm
from infra.addons._helm import CONTROL_PLANE_TOLERATION
from infra.addons.charts import NFS_PROVISIONER
from infra.config import StackConfig
from ml_jobs import taxonomy

__all__ = ["PATH_PATTERN", "PROVISIONER", "NfsStorage", "nfs_values"]

PROVISIONER = "herd.dev/nfs-subdir"
PATH_PATTERN = "${.PVC.namespace}/${.PVC.name}"


def nfs_values(cfg: StackConfig) -> dict:
    """Values of the nfs-subdir-external-provisioner chart. herd creates the StorageClass itself."""
    return {
        "nfs": {"server": cfg.nfs_server, "path": cfg.nfs_path, "mountOptions": list(cfg.nfs_mount_options)},
        "storageClass": {"create": False, "provisionerName": PROVISIONER},
        # Provision next to the NAS, not across the VPN; the control plane may be the only untainted on-prem node.
        "nodeSelector": {taxonomy.LABELS["location"].key: "onprem"},
        "tolerations": [CONTROL_PLANE_TOLERATION],
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
    }


class NfsStorage(pulumi.ComponentResource):
    """The NFS provisioner and herd's ReadWriteMany StorageClass.

    Attributes:
        storage_class: the StorageClass results claims use.
    """

    def __init__(self, name: str, cfg: StackConfig, namespace: str, opts: pulumi.ResourceOptions) -> None:
        super().__init__("herd:addons:NfsStorage", name, None, opts)
        child = _helm.child_opts(self, opts)
        self.release = _helm.release("nfs-provisioner", NFS_PROVISIONER, namespace, nfs_values(cfg), child)
        self.storage_class = k8s.storage.v1.StorageClass(
            f"{name}-class",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=cfg.storage_class_name, labels={"app.kubernetes.io/managed-by": "herd"}
            ),
            provisioner=PROVISIONER,
            parameters={
                "pathPattern": PATH_PATTERN,
                "archiveOnDelete": "true",
            },
            reclaim_policy="Retain",
            volume_binding_mode="Immediate",
            allow_volume_expansion=True,
            mount_options=list(cfg.nfs_mount_options),
            opts=child,
        )
        self.register_outputs({"storageClass": cfg.storage_class_name})
