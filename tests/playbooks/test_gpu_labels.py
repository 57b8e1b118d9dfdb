"""The Ansible side's GPU product normalisation is exactly ml_jobs.taxonomy.gpu_product_label_value(), and its
labels are GFD's on every GPU fixture (tests/fixtures/gpu).

GIVEN nvidia-smi answers (one line per GPU: name, memory, count) WHEN the nvidia role's own gpu_labels task file
parses them (run by ansible-playbook on this machine) THEN the product label equals what the Python function makes
of the same name, and count/memory come out as the taxonomy's labels.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from herd_local import gpu_facts
from ml_jobs.taxonomy import LABELS, gpu_product_label_value
from tests.playbooks.fixtures import run_fixture

# Real nvidia-smi product names, and names that exercise each normalisation rule.
NAMES = [
    "NVIDIA H100 80GB HBM3",
    "NVIDIA A100-SXM4-40GB",
    "NVIDIA GeForce RTX 4090",
    "Tesla V100-PCIE-16GB",
    "NVIDIA RTX A6000",
    "NVIDIA L40S",
    "NVIDIA H100 NVL",
    "NVIDIA GH200 480GB",
    "  NVIDIA   A10  ",
    "Quadro RTX 8000 (rev. a1)",
    "NVIDIA A100 80GB PCIe/MIG 1g.10gb",
    "GPU_with_underscores_",
    "-.NVIDIA weird- ",
    "NVIDIA " + "X" * 70,
    "Tesla K80 \u00e9dition",
    "NVIDIA A100 / MIG 1g.10gb",
    "Tesla\tK80",
]


def run_labels(answers: list[str], tmp_path: Path) -> list[dict[str, str]]:
    return run_fixture("gpu_labels", tmp_path / "labels.json", answers=answers)


@pytest.mark.slow
def test_product_label_matches_python_normalisation(tmp_path: Path) -> None:
    answers = [f"{name}, 40960 MiB, 1" for name in NAMES]
    results = run_labels(answers, tmp_path)
    product = LABELS["gpu_product"].key
    got = {name: r.get(product, r.get("error")) for name, r in zip(NAMES, results, strict=True)}
    assert got == {name: gpu_product_label_value(name) for name in NAMES}


@pytest.mark.slow
def test_count_memory_and_refusals(tmp_path: Path) -> None:
    eight = "\n".join(["NVIDIA H100 80GB HBM3, 81559 MiB, 8"] * 8)
    mixed = "NVIDIA H100 80GB HBM3, 81559 MiB, 2\nNVIDIA A100-SXM4-40GB, 40960 MiB, 2"
    short = "NVIDIA L4, 23034 MiB, 2"  # says two GPUs, lists one
    ok, refused_mixed, refused_short = run_labels([eight, mixed, short], tmp_path)
    assert ok == {
        LABELS["gpu_product"].key: "NVIDIA-H100-80GB-HBM3",
        LABELS["gpu_count"].key: "8",
        LABELS["gpu_memory"].key: "81559",
    }
    assert "one GPU model" in refused_mixed["error"]
    assert "NVIDIA H100 80GB HBM3 / NVIDIA A100-SXM4-40GB" in refused_mixed["error"]
    assert "error" in refused_short


@pytest.mark.slow
def test_the_role_labels_every_fixture_as_gfd_did(tmp_path: Path) -> None:
    """GIVEN each GPU fixture's nvidia-smi answer (captured, or written by hand where it says so) WHEN the role
    parses it THEN its labels are GFD's labels of that machine, and the Python twin's."""
    facts = gpu_facts.all_facts()
    results = run_labels([f.nvidia_smi_csv for f in facts.values()], tmp_path)
    for (name, f), labels in zip(facts.items(), results, strict=True):
        assert labels == f.gfd_herd_labels() == f.herd_labels(), name
