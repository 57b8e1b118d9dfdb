"""What herd knows offline about EC2 instance types: which carry NVIDIA GPUs, which model, how many.

Config validation needs this before any AWS call (a GPU pool on ``m5.large`` must be refused at `pulumi preview`
time, and offline by `herd-plan`), and the GPU model becomes the node-template label cluster-autoscaler uses to
scale a pool from zero, so it must match what GPU feature discovery later writes. Names are nvidia-smi's; the
label value is derived from them by the taxonomy, the same way GFD does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ml_jobs.taxonomy import gpu_product_label_value

__all__ = ["GpuSpec", "InstanceTypeError", "gpu_of", "parse"]

_NAME = re.compile(r"^(?P<family>[a-z][a-z0-9-]*)\.(?P<size>[a-z0-9]+)$")

# GPU count by size, shared by the g5, g6 and g6e families.
_G5_SIZES = {
    "xlarge": 1,
    "2xlarge": 1,
    "4xlarge": 1,
    "8xlarge": 1,
    "16xlarge": 1,
    "12xlarge": 4,
    "24xlarge": 4,
    "48xlarge": 8,
}

# family -> (nvidia-smi product name, {size: GPU count})
_NVIDIA: dict[str, tuple[str, dict[str, int]]] = {
    "g4dn": (
        "Tesla T4",
        {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "16xlarge": 1, "12xlarge": 4, "metal": 8},
    ),
    "g5": (
        "NVIDIA A10G",
        _G5_SIZES,
    ),
    "g6": (
        "NVIDIA L4",
        _G5_SIZES,
    ),
    "g6e": (
        "NVIDIA L40S",
        _G5_SIZES,
    ),
    "p3": ("Tesla V100-SXM2-16GB", {"2xlarge": 1, "8xlarge": 4, "16xlarge": 8}),
    "p3dn": ("Tesla V100-SXM2-32GB", {"24xlarge": 8}),
    "p4d": ("NVIDIA A100-SXM4-40GB", {"24xlarge": 8}),
    "p4de": ("NVIDIA A100-SXM4-80GB", {"24xlarge": 8}),
    "p5": ("NVIDIA H100 80GB HBM3", {"4xlarge": 1, "48xlarge": 8}),
}

# Accelerated families whose accelerators the NVIDIA device plugin cannot use.
_OTHER_ACCELERATORS = {"g4ad", "inf1", "inf2", "trn1", "trn1n", "trn2", "dl1", "dl2q", "f1", "f2", "vt1"}

# Graviton (arm64) families: herd's node images and user-data are amd64.
_ARM = re.compile(r"^(a1|[a-z]+\dg[a-z]*|g5g)$")


class InstanceTypeError(ValueError):
    """An instance type herd cannot use, with the reason."""


@dataclass(frozen=True)
class GpuSpec:
    """The NVIDIA GPUs of one instance type."""

    product: str
    count: int

    def __str__(self) -> str:
        """``1x NVIDIA A10G``: how messages name it."""
        return f"{self.count}x {self.product}"

    @property
    def product_label(self) -> str:
        """The ``nvidia.com/gpu.product`` value GFD writes for this model."""
        return gpu_product_label_value(self.product)


def parse(instance_type: str) -> tuple[str, str]:
    """Split ``g5.2xlarge`` into family and size, refusing names that cannot be instance types or run herd."""
    m = _NAME.match(instance_type)
    if not m:
        raise InstanceTypeError(f"{instance_type!r} is not an EC2 instance type name (family.size)")
    family, size = m["family"], m["size"]
    if _ARM.match(family):
        raise InstanceTypeError(f"{instance_type} is arm64 (Graviton); burst nodes are amd64")
    return family, size


def gpu_of(instance_type: str) -> GpuSpec | None:
    """The NVIDIA GPUs of ``instance_type``, or None if it has none.

    Raises:
        InstanceTypeError: the name is malformed, arm64, a known GPU family in a size that does not exist, or a
            family whose accelerators are not NVIDIA GPUs.
    """
    family, size = parse(instance_type)
    if family in _OTHER_ACCELERATORS:
        raise InstanceTypeError(f"{instance_type} has accelerators but no NVIDIA GPU")
    if family not in _NVIDIA:
        return None
    product, sizes = _NVIDIA[family]
    if size not in sizes:
        raise InstanceTypeError(f"{instance_type} is not a {family} size (known: {', '.join(sorted(sizes))})")
    return GpuSpec(product=product, count=sizes[size])
