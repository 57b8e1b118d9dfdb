"""scripts/gpu-facts.sh, run here end to end with the nvidia-smi TEST DOUBLE on PATH (no GPU on this machine).

What this proves: every step runs and leaves its record, a failing step does not stop the rest, herd's labels
come out of the captured answer by the Python twin and by the nvidia role itself, ``ml-jobs run --local`` hands
the run one GPU, and a capture turns into a fixture. What it cannot: GFD and the device plugin need NVML (a
driver), so here they fail, or are skipped when not built (scripts/components.sh --gpu); the real run is
docs/development/gpu-facts.md.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from herd_local import gpu_facts
from herd_local.paths import REPO
from tests.playbooks.doubles import aptrepo

SCRIPT = REPO / "scripts" / "gpu-facts.sh"
FIXTURE = "h100-80gb-hbm3-x2"
DRIVER = "580.95.05"
STEPS = [
    "date", "machine/uname", "machine/os-release", "machine/glibc", "machine/python", "machine/pci-gpus",
    "nvidia-smi/query", "nvidia-smi/list", "nvidia-smi/driver-version", "nvidia-smi/version", "nvidia-smi/summary",
    "gfd/version", "gfd/run", "herd/labels", "herd/role", "compare", "ml-jobs/run",
    "device-plugin/version", "device-plugin/run",
]  # fmt: skip


def gpu_bin(tmp_path: Path) -> Path:
    """The GPU components if scripts/components.sh --gpu built them, else an empty directory (steps skipped)."""
    done = subprocess.run(["bash", str(REPO / "scripts/components.sh"), "--gpu", "--dir"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    if done.returncode == 0:
        return Path(done.stdout.strip())
    (tmp_path / "no-gpu-bin").mkdir()
    return tmp_path / "no-gpu-bin"


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("gpu-facts")
    doubles = Path(aptrepo.HERE)
    (tmp / "bin").mkdir()
    smi = tmp / "bin" / "nvidia-smi"
    smi.write_text((doubles / "nvidia_smi_double.py").read_text().replace("@VERSION@", DRIVER))
    smi.chmod(0o755)
    facts = gpu_facts.load(FIXTURE)
    answers = tmp / "root/etc/herd-test/fake-gpus.json"
    answers.parent.mkdir(parents=True)
    smi_answers = {"nvidia_smi_csv": facts.nvidia_smi_csv, "nvidia_smi_list": facts.nvidia_smi_list}
    answers.write_text(json.dumps(smi_answers))
    env = {**os.environ, "PATH": f"{tmp / 'bin'}:{os.environ['PATH']}", "HERD_DOUBLES_ROOT": str(tmp / "root"),
           "PYTHONPATH": str(doubles), "HERD_PYTHON": sys.executable,
           "HERD_GPU_BIN": str(gpu_bin(tmp))}  # fmt: skip
    done = subprocess.run(["bash", str(SCRIPT), str(tmp / "out")], env=env, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return tmp / "out"


def summary(out: Path) -> dict[str, str]:
    with (out / "summary.tsv").open() as f:
        return {row["step"]: row["rc"] for row in csv.DictReader(f, delimiter="\t")}


@pytest.mark.slow
def test_every_step_is_recorded_in_order(capture: Path) -> None:
    steps = summary(capture)
    unbuilt = {"gfd/version", "device-plugin/version"}  # a binary that is not there has no version to ask
    expected = STEPS if "gfd/version" in steps else [s for s in STEPS if s not in unbuilt]
    assert list(steps) == expected
    for step, rc in steps.items():
        assert (capture / f"{step}.err").is_file(), step
        if rc != "skipped":
            assert (capture / f"{step}.rc").read_text().strip() == rc, step


@pytest.mark.slow
def test_the_double_answers_what_the_role_and_ml_jobs_ask_and_refuses_the_rest(capture: Path) -> None:
    facts = gpu_facts.load(FIXTURE)
    steps = summary(capture)
    assert steps["nvidia-smi/query"] == steps["nvidia-smi/list"] == steps["nvidia-smi/driver-version"] == "0"
    assert (capture / "nvidia-smi/query.out").read_text() == facts.nvidia_smi_csv
    assert (capture / "nvidia-smi/list.out").read_text() == facts.nvidia_smi_list
    assert (capture / "nvidia-smi/driver-version.out").read_text() == f"{DRIVER}\n{DRIVER}\n"
    # a question no fixture holds is refused, recorded, and the run goes on
    assert steps["nvidia-smi/version"] == "1"
    assert "the double answers only -L" in (capture / "nvidia-smi/version.err").read_text()


@pytest.mark.slow
def test_herd_labels_the_capture_by_the_twin_and_by_the_role(capture: Path) -> None:
    expected = gpu_facts.load(FIXTURE).gfd_herd_labels()
    assert json.loads((capture / "herd/labels.out").read_text()) == expected
    assert json.loads((capture / "herd/role-labels.json").read_text()) == [expected]


@pytest.mark.slow
def test_gfd_without_nvml_is_a_recorded_failure_and_the_comparison_says_so(capture: Path) -> None:
    steps = summary(capture)
    if steps["gfd/run"] == "skipped":
        assert "no " in (capture / "gfd/run.err").read_text()
    else:  # built, but this machine has no driver: NVML cannot load
        assert steps["gfd/run"] != "0"
        assert steps["gfd/version"] == "0" and "v0.17.4" in (capture / "gfd/version.out").read_text()
    assert steps["compare"] == "2"
    assert "gfd/labels: missing from the capture" in (capture / "compare.err").read_text()


@pytest.mark.slow
def test_ml_jobs_hands_the_run_one_gpu(capture: Path) -> None:
    assert summary(capture)["ml-jobs/run"] == "0"
    (log,) = (capture / "ml-jobs/results/gpu-facts").glob("run-00000/logs/attempt-*.log")
    lines = log.read_text().splitlines()
    assert lines[0] == "CUDA_VISIBLE_DEVICES=0"
    assert lines[1:] == gpu_facts.load(FIXTURE).nvidia_smi_list.splitlines()


@pytest.mark.slow
def test_a_capture_with_gfd_labels_becomes_a_fixture_and_compares(capture: Path, tmp_path: Path) -> None:
    # GIVEN the capture plus a GFD output file (written here, as GFD writes it on a GPU machine)
    out = tmp_path / "out"
    subprocess.run(["cp", "-r", str(capture), str(out)], check=True)
    (out / "gfd/labels").write_text(
        "nvidia.com/cuda.driver.major=580\nnvidia.com/gpu.count=2\nnvidia.com/gpu.family=hopper\n"
        "nvidia.com/gpu.memory=81559\nnvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3\n"
    )
    # WHEN herd compares and makes a fixture of it
    compare = subprocess.run([sys.executable, "-m", "herd_local.gpu_facts", "compare", str(out)],
                             capture_output=True, text=True, check=False, cwd=REPO)  # fmt: skip
    facts = gpu_facts.from_capture(out)
    # THEN the labels agree, and the fixture names the GPU, the driver and the date
    assert compare.returncode == 0, compare.stdout + compare.stderr
    product = "NVIDIA-H100-80GB-HBM3"
    assert compare.stdout.splitlines()[1] == f"nvidia.com/gpu.product  {product}  {product}  ok"
    date = (capture / "date.out").read_text().strip()
    assert facts["source"] == (
        f"captured on NVIDIA H100 80GB HBM3 x2, driver {DRIVER}, {date} (scripts/gpu-facts.sh)"
    )
    assert facts["gfd_labels"]["nvidia.com/gpu.family"] == "hopper"
    (tmp_path / "fx").mkdir()
    (tmp_path / "fx/h100.json").write_text(json.dumps(facts))
    loaded = gpu_facts.load("h100", tmp_path / "fx")
    assert loaded.captured and loaded.herd_labels() == loaded.gfd_herd_labels()
