"""The label taxonomy: one definition, valid Kubernetes names, GFD-compatible GPU product values."""

from __future__ import annotations

import pytest

from ml_jobs import taxonomy


def test_every_label_key_is_a_valid_qualified_name_outside_reserved_prefixes():
    for label in taxonomy.LABELS.values():
        assert taxonomy.is_valid_qualified_name(label.key), label.key
        prefix = label.key.partition("/")[0]
        # Kubelets may not self-assign labels under kubernetes.io / k8s.io (NodeRestriction).
        assert not prefix.endswith(("kubernetes.io", "k8s.io")), label.key


def test_enumerated_values_are_valid_label_values():
    for label in taxonomy.LABELS.values():
        for value in label.values or ():
            assert taxonomy.is_valid_label_value(value), (label.key, value)


def test_gpu_taint_tolerations_match_the_taint():
    toleration = taxonomy.GPU_TAINT.as_toleration()
    assert toleration == {"key": "nvidia.com/gpu", "operator": "Equal", "value": "present", "effect": "NoSchedule"}
    assert str(taxonomy.GPU_TAINT) == "nvidia.com/gpu=present:NoSchedule"


@pytest.mark.parametrize(
    ("smi_name", "label_value"),
    [
        ("NVIDIA H100 80GB HBM3", "NVIDIA-H100-80GB-HBM3"),
        ("NVIDIA A100-SXM4-40GB", "NVIDIA-A100-SXM4-40GB"),
        ("Tesla V100-PCIE-16GB", "Tesla-V100-PCIE-16GB"),
        ("NVIDIA GeForce RTX 4090", "NVIDIA-GeForce-RTX-4090"),
        ("  NVIDIA L4 ", "NVIDIA-L4"),
        ("NVIDIA RTX 6000 Ada Generation (rev 2)", "NVIDIA-RTX-6000-Ada-Generation-rev-2"),
        # GFD drops the characters first, then joins the words: no double dash where a dropped one stood alone.
        ("NVIDIA A100 / MIG 1g.10gb", "NVIDIA-A100-MIG-1g.10gb"),
        ("Tesla\tK80", "TeslaK80"),  # only the ASCII space separates words; GFD drops a tab like any other
    ],
)
def test_gpu_product_label_value_follows_gfd(smi_name, label_value):
    assert taxonomy.gpu_product_label_value(smi_name) == label_value
    assert taxonomy.is_valid_label_value(label_value)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("", True),
        ("a", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("-a", False),
        ("a_b.c-d", True),
        ("a b", False),
    ],
)
def test_label_value_rules(value, ok):
    assert taxonomy.is_valid_label_value(value) is ok


@pytest.mark.parametrize(
    ("key", "ok"),
    [("herd.dev/pool", True), ("pool", True), ("Herd.dev/pool", False), ("herd.dev/", False), ("a/b/c", False)],
)
def test_qualified_name_rules(key, ok):
    assert taxonomy.is_valid_qualified_name(key) is ok
