"""herd_local: a local real cluster to develop and test herd against, and to try ml-jobs without a cluster.

Upstream etcd, kube-apiserver, kube-controller-manager, kube-scheduler, KWOK and Kueue built from their Go modules
(``scripts/components.sh``), KWOK nodes shaped like the example site, and a real node (containerd, runc, the
kubelet) running the example's image, built here without a registry. Not part of what an operator installs: the
operator's tools are ``herd_ops``.

Modules, each one idea: ``cluster`` (``LocalCluster``: start, supervise, stop), ``ports`` (every port offset),
``pki`` (the CA, certificates, kubeconfigs), ``processes`` (the supervisor), ``objects`` (what the cluster holds),
``site`` (the nodes a site registers), ``kueue`` (Kueue out of cluster), ``real_node``, ``images``, ``components``,
``paths``, ``errors`` and ``cli`` (``herd-local``).

>>> from herd_local import LocalCluster
>>> cluster = LocalCluster(Path(".herd/local-cluster"))      # doctest: +SKIP
>>> cluster.up()                                              # doctest: +SKIP
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from herd_local.errors import ImageError, LocalClusterError, LocalError, RealNodeError

if TYPE_CHECKING:
    from herd_local.cluster import LocalCluster

__all__ = ["ImageError", "LocalCluster", "LocalClusterError", "LocalError", "RealNodeError"]


def __getattr__(name: str) -> Any:
    if name == "LocalCluster":
        return import_module("herd_local.cluster").LocalCluster
    raise AttributeError(f"module 'herd_local' has no attribute {name!r}")
