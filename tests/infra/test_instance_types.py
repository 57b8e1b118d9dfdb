"""The instance-type table (infra/instance_types.yaml) against the provider's own list of EC2 instance types, and
the GPU facts herd derives from it."""

from __future__ import annotations

import collections

import pytest
from pulumi_aws.ec2 import InstanceType

from infra._instance_types import _GRAVITON, GpuSpec, InstanceTypeError, gpu_of, table


@pytest.fixture(scope="module")
def provider_types() -> dict[str, set[str]]:
    """Family -> sizes, from pulumi-aws's aws.ec2.InstanceType (the provider version pinned in pyproject.toml)."""
    families: dict[str, set[str]] = collections.defaultdict(set)
    for member in InstanceType:
        family, size = member.value.split(".", 1)
        families[family].add(size)
    return families


def test_every_listed_family_has_exactly_the_providers_sizes(provider_types):
    t = table()
    for family in t.families:
        assert family in provider_types, family
        assert set(t.sizes(family) or ()) == provider_types[family], family


def test_every_refused_family_exists_and_is_not_also_listed(provider_types):
    t = table()
    assert set(t.refused) <= set(provider_types)
    assert not set(t.refused) & set(t.families)


def test_no_listed_family_looks_like_graviton_and_graviton_families_exist():
    assert not [f for f in table().families if _GRAVITON.match(f)]
    for family in ("m7g", "c6gn", "r8gd", "t4g", "x2gd", "is4gen", "g5g", "c9g"):
        assert _GRAVITON.match(family), family


def test_the_table_covers_current_nvidia_families_and_cpu_kinds():
    t = table()
    for family in ("g4dn", "g5", "g6", "gr6", "g6e", "g7", "g7e", "p4d", "p4de", "p5", "p5e", "p5en"):
        assert family in t.gpu, family
    assert {"p6-b200", "p6-b300"} <= set(t.gpu)
    assert set(t.cpu) == {"general", "compute", "memory"}
    assert {"m7i", "m8i", "t3"} <= set(t.cpu["general"])
    assert {"c6i", "c7i", "c8i"} <= set(t.cpu["compute"])
    assert {"r7i", "r8i", "x2iedn", "z1d"} <= set(t.cpu["memory"])


@pytest.mark.parametrize(
    ("instance_type", "gpus", "label"),
    [
        ("g4dn.metal", GpuSpec("Tesla T4", 8), "Tesla-T4"),
        ("g5.2xlarge", GpuSpec("NVIDIA A10G", 1), "NVIDIA-A10G"),
        ("g6.48xlarge", GpuSpec("NVIDIA L4", 8), "NVIDIA-L4"),
        ("gr6.8xlarge", GpuSpec("NVIDIA L4", 1), "NVIDIA-L4"),
        ("g6e.12xlarge", GpuSpec("NVIDIA L40S", 4), "NVIDIA-L40S"),
        ("g7.8xlarge", GpuSpec("NVIDIA RTX PRO 4500 Blackwell Server Edition", 2), None),
        (
            "g7e.12xlarge",
            GpuSpec("NVIDIA RTX PRO 6000 Blackwell Server Edition", 2),
            "NVIDIA-RTX-PRO-6000-Blackwell-Server-Edition",
        ),
        ("p4de.24xlarge", GpuSpec("NVIDIA A100-SXM4-80GB", 8), "NVIDIA-A100-SXM4-80GB"),
        ("p5.4xlarge", GpuSpec("NVIDIA H100 80GB HBM3", 1), "NVIDIA-H100-80GB-HBM3"),
        ("p5e.48xlarge", GpuSpec("NVIDIA H200", 8), "NVIDIA-H200"),
        ("p5en.48xlarge", GpuSpec("NVIDIA H200", 8), "NVIDIA-H200"),
        ("p6-b200.48xlarge", GpuSpec("NVIDIA B200", 8), "NVIDIA-B200"),
        ("p6-b300.48xlarge", GpuSpec("NVIDIA B300 SXM6 AC", 8), "NVIDIA-B300-SXM6-AC"),
    ],
)
def test_gpu_types_carry_their_model_count_and_gfd_label(instance_type, gpus, label):
    spec = gpu_of(instance_type)
    assert spec == gpus
    if label is not None:
        assert spec is not None and spec.product_label == label


@pytest.mark.parametrize("instance_type", ["c6i.8xlarge", "m7i-flex.large", "r8i.metal-96xl", "t3.medium"])
def test_cpu_types_have_no_gpu(instance_type):
    assert gpu_of(instance_type) is None


@pytest.mark.parametrize(
    ("instance_type", "message"),
    [
        ("c6i.8xlarg", "c6i.8xlarg is not a c6i size; did you mean c6i.8xlarge?"),
        ("g6e.96xlarge", "g6e.96xlarge is not a g6e size; did you mean g6e.16xlarge?"),
        ("p5.metal", "p5.metal is not a p5 size (p5 sizes: 4xlarge, 48xlarge)"),
        ("c6ix.large", "c6ix.large: c6ix is not an instance family herd knows; did you mean c6i.large?"),
        (
            "i4i.large",  # storage optimized: outside the table's kinds
            "i4i.large: i4i is not an instance family herd knows (its table, infra/instance_types.yaml, lists "
            "NVIDIA GPU, general purpose, compute and memory optimized families)",
        ),
        ("g4ad.xlarge", "g4ad.xlarge has AMD GPUs, not NVIDIA ones"),
        ("p2.xlarge", "p2.xlarge is a previous-generation GPU family (NVIDIA K80) that current NVIDIA drivers do "
         "not support"),
        ("m8g.large", "m8g.large is arm64 (Graviton); burst nodes are amd64"),
        ("a1.large", "a1.large is arm64 (Graviton); burst nodes are amd64"),
        ("P5.48xlarge", "'P5.48xlarge' is not an EC2 instance type name (family.size)"),
    ],
)  # fmt: skip
def test_types_outside_the_table_are_refused_in_one_line(instance_type, message):
    with pytest.raises(InstanceTypeError) as info:
        gpu_of(instance_type)
    assert str(info.value) == message
