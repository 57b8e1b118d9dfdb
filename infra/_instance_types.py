"""What herd knows offline about EC2 instance types: which exist, which carry NVIDIA GPUs, which model, how many.

Config validation needs this before any AWS call (a GPU pool on ``m5.large`` or a typo such as ``c6i.8xlarg`` must
be refused at `pulumi preview` time, and offline by `herd-plan`), and the GPU model becomes the node-template label
cluster-autoscaler uses to scale a pool from zero, so it must match what GPU feature discovery later writes. The
facts live in one data file, ``infra/instance_types.yaml``, which names its sources; this module only reads it.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from ml_jobs.taxonomy import gpu_product_label_value

__all__ = ["TABLE_FILE", "GpuSpec", "InstanceTypeError", "Table", "gpu_of", "parse", "table"]

TABLE_FILE = Path(__file__).resolve().parent / "instance_types.yaml"

_NAME = re.compile(r"^(?P<family>[a-z][a-z0-9-]*)\.(?P<size>[a-z0-9][a-z0-9-]*)$")
# Graviton (arm64) families: a `g` right after the generation digit (m7g, c6gn, r8gd, t4g, is4gen, g5g, ...).
_GRAVITON = re.compile(r"^[a-z]+\dg[a-z]*$")


_TABLE_HINT = (
    " (its table, infra/instance_types.yaml, lists NVIDIA GPU, general purpose, compute and memory optimized "
    "families)"
)


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


@dataclass(frozen=True)
class Table:
    """The instance-type table: GPU families (product, GPUs per size), CPU families by kind, refused families."""

    gpu: dict[str, tuple[str, dict[str, int]]]
    cpu: dict[str, dict[str, tuple[str, ...]]]
    refused: dict[str, str]

    def sizes(self, family: str) -> tuple[str, ...] | None:
        """The sizes of a listed family, or None if the family is not listed."""
        if family in self.gpu:
            return tuple(self.gpu[family][1])
        for families in self.cpu.values():
            if family in families:
                return families[family]
        return None

    @property
    def families(self) -> list[str]:
        """Every family a pool may use."""
        return [*self.gpu, *(f for families in self.cpu.values() for f in families)]


def _load(doc: dict[str, Any]) -> Table:
    gpu = {
        family: (str(entry["product"]), {str(size): int(n) for size, n in entry["gpus"].items()})
        for family, entry in doc["gpu"].items()
    }
    cpu = {
        kind: {family: tuple(str(size) for size in sizes) for family, sizes in families.items()}
        for kind, families in doc["cpu"].items()
    }
    return Table(gpu=gpu, cpu=cpu, refused={str(f): str(why) for f, why in doc["refused"].items()})


@cache
def table() -> Table:
    """The table read from ``infra/instance_types.yaml``."""
    return _load(yaml.safe_load(TABLE_FILE.read_text(encoding="utf-8")))


def parse(instance_type: str) -> tuple[str, str]:
    """Split ``g5.2xlarge`` into family and size, refusing names that cannot be instance types."""
    m = _NAME.match(instance_type)
    if not m:
        raise InstanceTypeError(f"{instance_type!r} is not an EC2 instance type name (family.size)")
    return m["family"], m["size"]


def _did_you_mean(word: str, choices: list[str] | tuple[str, ...]) -> str | None:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def gpu_of(instance_type: str) -> GpuSpec | None:
    """The NVIDIA GPUs of ``instance_type``, or None for a listed CPU type.

    Raises:
        InstanceTypeError: the name is malformed, its family is not in the table (arm64, non-NVIDIA
            accelerators, fractional GPUs, previous generations, or unknown, with a did-you-mean) or the family has
            no such size (with a did-you-mean).
    """
    family, size = parse(instance_type)
    t = table()
    sizes = t.sizes(family)
    if sizes is None:
        if family in t.refused:
            raise InstanceTypeError(f"{instance_type} {t.refused[family]}")
        if _GRAVITON.match(family):
            raise InstanceTypeError(f"{instance_type} is arm64 (Graviton); burst nodes are amd64")
        close = _did_you_mean(family, t.families)
        hint = f"; did you mean {close}.{size}?" if close else _TABLE_HINT
        raise InstanceTypeError(f"{instance_type}: {family} is not an instance family herd knows{hint}")
    if size not in sizes:
        close = _did_you_mean(size, sizes)
        hint = f"; did you mean {family}.{close}?" if close else f" ({family} sizes: {', '.join(sizes)})"
        raise InstanceTypeError(f"{instance_type} is not a {family} size{hint}")
    if family in t.gpu:
        product, counts = t.gpu[family]
        return GpuSpec(product=product, count=counts[size])
    return None
