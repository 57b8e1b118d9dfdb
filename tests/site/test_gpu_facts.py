"""herd's GPU labels against GPU feature discovery's, per GPU fixture (tests/fixtures/gpu, herd_local.gpu_facts).

GIVEN a machine's nvidia-smi answer and the labels GFD wrote there WHEN herd makes its labels of the same answer
(the Python twin of the nvidia role's parsing; tests/playbooks/test_gpu_labels.py runs the role itself on every
fixture) THEN product, count and memory are GFD's. A captured fixture checks herd against real GFD; a hand-written
one checks that what herd believes GFD writes is consistent with herd's own parsing.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from herd_local import gpu_facts
from herd_local.gpu_facts import GpuFactsError
from herd_local.objects import SIMULATED_HARDWARE

FACTS = gpu_facts.all_facts()
PRODUCT, COUNT, MEMORY = gpu_facts.HERD_GPU_LABELS


def test_there_are_fixtures_and_each_says_where_it_came_from():
    assert len(FACTS) >= 2
    for name, facts in FACTS.items():
        if facts.captured:  # the machine, the driver and the date: what docs/development/verified.md cites
            assert facts.driver_version and facts.driver_version in facts.source, name
        else:
            assert facts.source.startswith("written by hand: not captured yet"), name
            assert facts.driver_version is None, name


@pytest.mark.parametrize("name", sorted(FACTS))
def test_herd_labels_are_gfds(name):
    facts = FACTS[name]
    assert set(facts.gfd_herd_labels()) == {PRODUCT, COUNT, MEMORY}, f"{name}: GFD's labels lack a key herd uses"
    assert facts.herd_labels() == facts.gfd_herd_labels()


@pytest.mark.parametrize("name", sorted(FACTS))
def test_the_list_and_the_query_name_the_same_gpus(name):
    facts = FACTS[name]
    listed = [line for line in facts.nvidia_smi_list.splitlines() if line.startswith("GPU ")]
    assert len(listed) == facts.gpu_count == int(facts.gfd_labels[COUNT])
    model = facts.nvidia_smi_csv.split(",")[0]
    assert all(line.split(": ", 1)[1].startswith(f"{model} (UUID: GPU-") for line in listed)


def test_simulated_gpu_nodes_carry_the_fixtures_gfd_labels():
    for pool, fixture in (("onprem-gpu", "h100-80gb-hbm3-x4"), ("onprem-a100", "a100-sxm4-80gb-x4")):
        hw, labels = SIMULATED_HARDWARE[pool], FACTS[fixture].gfd_labels
        assert (hw.gpu_product, str(hw.gpus), str(hw.gpu_memory_mib)) == (
            labels[PRODUCT],
            labels[COUNT],
            labels[MEMORY],
        )


@pytest.mark.parametrize(
    ("csv", "error"),
    [
        ("", "nvidia-smi's answer is not one line per GPU of 'name, memory MiB, count': []"),
        ("NVIDIA L4, 23034 MiB, 2\n", "nvidia-smi's answer is not one line per GPU of 'name, memory MiB, count': "
         "[['NVIDIA L4', '23034 MiB', '2']]"),
        ("NVIDIA H100 80GB HBM3, 81559 MiB, 2\nNVIDIA A100-SXM4-40GB, 40960 MiB, 2\n",
         "nvidia-smi reported NVIDIA H100 80GB HBM3 / NVIDIA A100-SXM4-40GB: "
         "herd labels a node with one GPU model"),
        ("NVIDIA L4, 23034, 1\n", "nvidia-smi's memory.total '23034' is not '<n> MiB'"),
    ],
)  # fmt: skip
def test_herd_refuses_answers_it_cannot_label(csv, error):
    with pytest.raises(GpuFactsError) as e:
        gpu_facts.herd_labels(csv)
    assert str(e.value) == error


def write(directory: Path, data: object) -> None:
    (directory / "m.json").write_text(json.dumps(data))


GOOD = json.loads((gpu_facts.GPU_FIXTURES / "a100-sxm4-40gb-x1.json").read_text())


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({k: v for k, v in GOOD.items() if k != "gfd_labels"}, "missing gfd_labels"),
        ({**GOOD, "nvidia_smi": ""}, "unknown field(s) nvidia_smi (known: source, driver_version, nvidia_smi_csv, "
         "nvidia_smi_list, gfd_labels)"),
        ({**GOOD, "source": "from a colleague"},
         "source must start with 'captured on ' or 'written by hand', got 'from a colleague'"),
        ({**GOOD, "gfd_labels": {PRODUCT: 4}}, "gfd_labels must map label keys to string values"),
        ([], "not a JSON object"),
    ],
)  # fmt: skip
def test_a_bad_fixture_is_refused_naming_file_and_field(tmp_path, data, error):
    write(tmp_path, data)
    with pytest.raises(GpuFactsError) as e:
        gpu_facts.load("m", tmp_path)
    assert str(e.value) == f"{tmp_path / 'm.json'}: {error}"


def test_a_missing_fixture_names_the_known_ones(tmp_path):
    write(tmp_path, GOOD)
    with pytest.raises(GpuFactsError, match=r"/h200\.json: no such GPU fixture \(known: m\)$"):
        gpu_facts.load("h200", tmp_path)


def test_the_comparison_table_marks_each_difference():
    herd = {PRODUCT: "NVIDIA-H200", COUNT: "1", MEMORY: "143771"}
    table, same = gpu_facts.comparison(herd, {**herd, MEMORY: "143360"})
    assert not same
    assert table.splitlines() == [
        "label                   herd         GFD",
        "nvidia.com/gpu.product  NVIDIA-H200  NVIDIA-H200  ok",
        "nvidia.com/gpu.count    1            1            ok",
        "nvidia.com/gpu.memory   143771       143360       DIFFERS",
    ]
    assert gpu_facts.comparison(herd, dict(herd))[1]


def test_gfd_output_file_is_read_without_its_timestamp():
    text = "nvidia.com/gfd.timestamp=1733900000\nnvidia.com/gpu.count=1\nnvidia.com/gpu.product=NVIDIA-H200\n"
    assert gpu_facts.gfd_label_file(text) == {COUNT: "1", PRODUCT: "NVIDIA-H200"}
