"""Fixtures of the Kubernetes backend's tests: the API emulator and the component doubles (see emulator.py,
doubles.py for what they fill in and what they cannot)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ml_jobs.spec import Experiment
from tests.ml_jobs.cluster.doubles import (
    AutoscalerDouble,
    JobControllerDouble,
    KubeletDouble,
    ResultsVolumeDouble,
    SchedulerDouble,
    node,
)
from tests.ml_jobs.cluster.emulator import EmulatedCluster

GPU_PRODUCT = "NVIDIA-H100-80GB-HBM3"


def experiment(runs: int = 6, **overrides: Any) -> Experiment:
    """A GPU sweep of ``runs`` runs (random search over lr and batch size) with an objective."""
    spec: dict[str, Any] = {
        "name": "bert-sweep",
        "image": "registry.example.com/nlp/bert:2.1",
        "command": ["python", "-m", "train"],
        "args": ["--lr", "{{ lr }}", "--batch", "{{ batch }}"],
        "resources": {"cpu": "4", "memory": "16Gi", "gpus": 1, "gpu_product": GPU_PRODUCT},
        "retries": 1,
        "parallelism": 4,
        "results": {"claim": "team-results", "mount_path": "/mnt/results"},
        "objective": {"metric": "accuracy", "goal": "max"},
        "sweep": {
            "random": {
                "seed": 7,
                "count": runs,
                "params": {"lr": {"loguniform": [1e-5, 1e-2]}, "batch": {"choice": [16, 32, 64]}},
            }
        },
    }
    spec.update(overrides)
    return Experiment(**spec)


def gpu_cluster_nodes() -> list[dict[str, Any]]:
    """Five nodes: two H100 nodes (tainted), one A10 node (tainted), two CPU nodes."""
    gpu_taint = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    return [
        node(
            "gpu-h100-1",
            labels={"nvidia.com/gpu.product": GPU_PRODUCT, "herd.dev/tier": "gpu"},
            gpus=1,
            taints=gpu_taint,
        ),
        node(
            "gpu-h100-2",
            labels={"nvidia.com/gpu.product": GPU_PRODUCT, "herd.dev/tier": "gpu"},
            gpus=1,
            taints=gpu_taint,
        ),
        node(
            "gpu-a10-1",
            labels={"nvidia.com/gpu.product": "NVIDIA-A10G", "herd.dev/tier": "gpu"},
            gpus=1,
            taints=gpu_taint,
        ),
        node("cpu-1", labels={"herd.dev/tier": "general"}),
        node("cpu-2", labels={"herd.dev/tier": "general"}),
    ]


@pytest.fixture
def cluster() -> Iterator[EmulatedCluster]:
    c = EmulatedCluster().start()
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture
def api(cluster: EmulatedCluster) -> Iterator[Any]:
    a = cluster.api()
    try:
        yield a
    finally:
        a.close()


@pytest.fixture
def controller(cluster: EmulatedCluster) -> JobControllerDouble:
    return JobControllerDouble(cluster)


@pytest.fixture
def scheduler(cluster: EmulatedCluster) -> SchedulerDouble:
    return SchedulerDouble(cluster, gpu_cluster_nodes())


@pytest.fixture
def kubelet(cluster: EmulatedCluster, controller: JobControllerDouble) -> KubeletDouble:
    return KubeletDouble(cluster, controller)


@pytest.fixture
def autoscaler(cluster: EmulatedCluster) -> AutoscalerDouble:
    return AutoscalerDouble(cluster)


@pytest.fixture
def volume(tmp_path: Path) -> ResultsVolumeDouble:
    root = tmp_path / "nfs"
    root.mkdir()
    return ResultsVolumeDouble(root)
