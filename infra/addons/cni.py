"""The cluster network. Calico in VXLAN mode works across the VPN: nodes only need to reach each other's node IPs
(routed by the VPN), pod traffic is encapsulated, and no BGP peering with the on-prem router is needed.

``Cni`` is the seam: ``none`` leaves an already-installed CNI alone, and a later mode (EKS Hybrid Nodes, where
AWS does not provide the CNI for hybrid nodes either) can bring its own implementation.
"""

from __future__ import annotations

from typing import Protocol

import pulumi

from infra.addons import _helm
from infra.addons.charts import CALICO
from infra.config import StackConfig

__all__ = ["Calico", "Cni", "ExistingCni", "calico_values", "cni_for"]


class Cni(Protocol):
    """An installed (or adopted) CNI; other add-ons depend on ``ready``."""

    ready: list[pulumi.Resource]


def calico_values(cfg: StackConfig) -> dict:
    """Values of the tigera-operator chart: an Installation with one VXLAN pool over the pod CIDR."""
    return {
        "installation": {
            "kubernetesProvider": "",
            "cni": {"type": "Calico"},
            "calicoNetwork": {
                "bgp": "Disabled",
                "mtu": cfg.cni_mtu,
                # Nodes register with their private IP (kubelet --node-ip); use it for the tunnel endpoints.
                "nodeAddressAutodetectionV4": {"kubernetes": "NodeInternalIP"},
                "ipPools": [
                    {
                        "name": "herd-pods",
                        "cidr": cfg.pod_cidr,
                        "blockSize": 26,
                        "encapsulation": "VXLAN",
                        "natOutgoing": "Enabled",
                        "nodeSelector": "all()",
                    }
                ],
            },
        },
        # Flow logs and the UI are not part of an ML cluster's needs; keep the footprint small.
        "goldmane": {"enabled": False},
        "whisker": {"enabled": False},
    }


class Calico(pulumi.ComponentResource):
    """Calico through the tigera-operator chart."""

    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions) -> None:
        super().__init__("herd:addons:Calico", name, None, opts)
        self.release = _helm.release(
            "calico",
            CALICO,
            "tigera-operator",
            calico_values(cfg),
            _helm.child_opts(self, opts),
            create_namespace=True,
        )
        self.ready: list[pulumi.Resource] = [self.release]
        self.register_outputs({})


class ExistingCni:
    """A CNI installed outside herd (``herd:cni: none``): nothing to create, nothing to wait for."""

    def __init__(self) -> None:
        self.ready: list[pulumi.Resource] = []


def cni_for(cfg: StackConfig, opts: pulumi.ResourceOptions) -> Cni:
    """The CNI the stack config asks for."""
    if cfg.cni == "calico":
        return Calico("cni", cfg, opts)
    return ExistingCni()
