"""The loopback ports of one local cluster: the one owner of every offset from its base port.

A cluster takes ``SPAN`` consecutive ports from its base (the API server's). Test clusters that run side by side
take bases ``STRIDE`` apart (:func:`free_base`).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass

__all__ = ["SPAN", "STRIDE", "Ports", "free_base", "port_taken"]

_OFFSETS = {
    "apiserver": 0,
    "etcd": 1,
    "etcd_peer": 2,
    "controller_manager": 3,
    "scheduler": 4,
    "kueue_webhooks": 5,
    "kueue_metrics": 6,
    "kueue_health": 7,
    "kubelet": 8,
    "kubelet_health": 9,
    "kueue_visibility": 10,
}
SPAN = max(_OFFSETS.values()) + 1
STRIDE = 20


@dataclass(frozen=True)
class Ports:
    """The loopback ports of one cluster, from one base: the API server's."""

    base: int

    def _at(self, name: str) -> int:
        return self.base + _OFFSETS[name]

    apiserver = property(lambda self: self._at("apiserver"))
    etcd = property(lambda self: self._at("etcd"))
    etcd_peer = property(lambda self: self._at("etcd_peer"))
    controller_manager = property(lambda self: self._at("controller_manager"))
    scheduler = property(lambda self: self._at("scheduler"))
    kueue_webhooks = property(lambda self: self._at("kueue_webhooks"))
    kueue_metrics = property(lambda self: self._at("kueue_metrics"))
    kueue_health = property(lambda self: self._at("kueue_health"))
    kueue_visibility = property(lambda self: self._at("kueue_visibility"))
    kubelet = property(lambda self: self._at("kubelet"))
    kubelet_health = property(lambda self: self._at("kubelet_health"))

    @property
    def by_process(self) -> dict[str, list[int]]:
        """Each process's ports, to check they are free before it starts."""
        return {
            "kube-apiserver": [self.apiserver],
            "etcd": [self.etcd, self.etcd_peer],
            "kube-controller-manager": [self.controller_manager],
            "kube-scheduler": [self.scheduler],
            "kueue": [self.kueue_webhooks, self.kueue_metrics, self.kueue_health, self.kueue_visibility],
            "kubelet": [self.kubelet, self.kubelet_health],
        }


def port_taken(port: int) -> bool:
    """Whether ``port`` on 127.0.0.1 cannot be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def free_base(start: int = 26443, stop: int = 40000) -> int:
    """The first base from ``start`` (in steps of ``STRIDE``) whose whole span is free on 127.0.0.1."""
    for base in range(start, stop, STRIDE):
        if not any(port_taken(port) for port in range(base, base + SPAN)):
            return base
    raise OSError(f"no {SPAN} free ports on 127.0.0.1 between {start} and {stop}")
