"""herd's one label taxonomy, read from ``taxonomy.yaml`` beside this module.

Everything in the kit that names a node label or taint takes it from here (Python) or from the same YAML file
(Ansible), so a pool created by Pulumi, a server joined by Ansible and a run submitted by ``ml_jobs`` agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import yaml

__all__ = [
    "GPU_RESOURCE",
    "GPU_SHARED_SUFFIX",
    "GPU_TAINT",
    "LABELS",
    "PREFIX",
    "LabelKey",
    "Taint",
    "gpu_product_label_value",
    "gpu_product_matches",
    "is_dns1123_label",
    "is_dns1123_subdomain",
    "is_valid_label_value",
    "is_valid_qualified_name",
    "load",
]

_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_NAME_PART = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
# Kubernetes object names: a DNS-1123 label (≤ 63: Jobs, Services, namespaces) or subdomain (≤ 253: most others).
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


@dataclass(frozen=True)
class LabelKey:
    """One node label of the taxonomy."""

    name: str
    key: str
    values: tuple[str, ...] | None
    description: str


@dataclass(frozen=True)
class Taint:
    """A node taint of the taxonomy."""

    key: str
    value: str
    effect: str

    def as_toleration(self) -> dict[str, str]:
        """The toleration a pod needs to land on a node with this taint."""
        return {"key": self.key, "operator": "Equal", "value": self.value, "effect": self.effect}

    def as_node_taint(self) -> dict[str, str]:
        """The taint as it appears in a Node's ``spec.taints`` or a kubeadm ``nodeRegistration``."""
        return {"key": self.key, "value": self.value, "effect": self.effect}

    def __str__(self) -> str:
        return f"{self.key}={self.value}:{self.effect}"


@cache
def load() -> dict[str, Any]:
    """The raw taxonomy document."""
    text = resources.files("ml_jobs").joinpath("taxonomy.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def _labels() -> dict[str, LabelKey]:
    doc = load()
    return {
        name: LabelKey(
            name=name,
            key=entry["key"],
            values=tuple(entry["values"]) if "values" in entry else None,
            description=" ".join(entry.get("description", "").split()),
        )
        for name, entry in doc["labels"].items()
    }


PREFIX: str = load()["prefix"]
LABELS: dict[str, LabelKey] = _labels()
GPU_TAINT = Taint(**{k: v for k, v in load()["taints"]["gpu"].items() if k != "description"})
GPU_RESOURCE: str = load()["gpu_resource"]
# With GPU time-slicing on, GFD appends this to nvidia.com/gpu.product (NVIDIA-A10G becomes NVIDIA-A10G-SHARED).
GPU_SHARED_SUFFIX = "-SHARED"


def gpu_product_label_value(product_name: str) -> str:
    """Turn ``nvidia-smi --query-gpu=name`` output into the ``nvidia.com/gpu.product`` value GFD writes.

    As GFD v0.17.4 sanitises the NVML name (internal/lm/resource.go): drop every character but ASCII letters,
    digits, ``-``, ``_``, ``.`` and space, then join the space-separated words with ``-``. Beyond GFD, we cut to 63
    characters and trim ``-``, ``_`` and ``.`` from the ends: a value GFD writes without that is no valid label
    value, and node feature discovery drops it (no real GPU name comes near either).

    >>> gpu_product_label_value("NVIDIA H100 80GB HBM3")
    'NVIDIA-H100-80GB-HBM3'
    """
    value = "-".join(re.sub(r"[^-A-Za-z0-9_. ]", "", product_name).split())[:63]
    return value.strip("-_.")


def is_dns1123_label(name: str) -> bool:
    """Whether ``name`` is a DNS-1123 label: ≤ 63 lower-case letters, digits and '-', alphanumeric ends."""
    return len(name) <= 63 and bool(_DNS1123_LABEL.match(name))


def is_dns1123_subdomain(name: str) -> bool:
    """Whether ``name`` is a DNS-1123 subdomain: ≤ 253 characters, dot-separated DNS-1123 labels."""
    return len(name) <= 253 and bool(_DNS1123_SUBDOMAIN.match(name))


def is_valid_label_value(value: str) -> bool:
    """Whether Kubernetes accepts ``value`` as a label value (≤ 63 characters, alphanumeric ends)."""
    return len(value) <= 63 and bool(_LABEL_VALUE.match(value))


def is_valid_qualified_name(key: str) -> bool:
    """Whether Kubernetes accepts ``key`` as a label or taint key: ``[prefix/]name``."""
    prefix, _, name = key.rpartition("/")
    if prefix and not is_dns1123_subdomain(prefix):
        return False
    return 0 < len(name) <= 63 and bool(_NAME_PART.match(name))


def gpu_product_matches(product: str) -> list[str]:
    """The ``nvidia.com/gpu.product`` values of nodes that have GPU ``product``: whole GPUs (``product``) and, with
    time-slicing on, shared replicas of them (``product-SHARED``, as GFD labels them). A product that already ends
    in the suffix, or that the suffix would make too long for a label value, matches only itself."""
    shared = product + GPU_SHARED_SUFFIX
    if product.endswith(GPU_SHARED_SUFFIX) or not is_valid_label_value(shared):
        return [product]
    return [product, shared]
