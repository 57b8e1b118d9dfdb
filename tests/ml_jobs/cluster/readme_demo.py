"""Drive the real ``ml-jobs`` CLI against the API emulator and print the transcript (the README's ``cluster``
section is this output).

NOT a real cluster: the API server is kmock's emulator (tests/ml_jobs/cluster/emulator.py) and the Job controller,
scheduler, kubelet, garbage collector and cluster-autoscaler are the doubles in doubles.py. The ``ml-jobs``
commands are the real CLI, run as subprocesses with a kubeconfig pointing at the emulator. The runs' metrics and
logs are those of a real local run of the same spec (``ml-jobs run examples/digits-sweep.yaml --local``), copied
onto the results-volume double, so the numbers are real training results.

    .venv/bin/python -m tests.ml_jobs.cluster.readme_demo --local-results /tmp/digits
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ml_jobs import layout
from tests.ml_jobs.cluster.doubles import (
    AutoscalerDouble,
    JobControllerDouble,
    KubeletDouble,
    SchedulerDouble,
    node,
)
from tests.ml_jobs.cluster.emulator import EmulatedCluster

REPO = Path(__file__).resolve().parents[3]
SPEC = REPO / "examples" / "digits-sweep.yaml"
EXPERIMENT = "digits-sweep"
# The example stack's team namespaces are vision and nlp (Pulumi.example.yaml herd:teams).
NAMESPACE = "vision"
# cluster-autoscaler names the ASG: <herd:clusterName>-<pool> (infra.burst_pool.asg_name), here lab-cpu-burst.
BURST_GROUP = "lab-cpu-burst"
BURST_MAX = 6


def kubeconfig(path: Path, server: str, namespace: str) -> Path:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "herd", "cluster": {"server": server}}],
        "users": [{"name": "alice", "user": {"token": "demo-token-made-at-run-time"}}],
        "contexts": [{"name": "herd", "context": {"cluster": "herd", "user": "alice", "namespace": namespace}}],
        "current-context": "herd",
    }
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def demo_nodes() -> list[dict[str, Any]]:
    """A small slice of the example site (inventory/example, Pulumi.example.yaml): its control plane (tainted),
    two on-prem CPU servers (pool onprem-cpu, shrunk to 4 CPUs so that the sweep does not fit at once) and a GPU
    server (GPU-tainted). The cloud pools have no nodes until the autoscaler adds one."""
    onprem = {"herd.dev/location": "onprem"}
    cpu = {**onprem, "herd.dev/tier": "high-cpu", "herd.dev/pool": "onprem-cpu"}
    return [
        node(
            "cp-01",
            labels={**onprem, "herd.dev/tier": "general", "herd.dev/pool": "control-plane"},
            cpu="4",
            memory="16Gi",
            taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
        ),
        node("cpu-01", labels=cpu, cpu="4", memory="16Gi"),
        node("cpu-02", labels=cpu, cpu="4", memory="16Gi"),
        node(
            "gpu-01",
            labels={
                **onprem,
                "herd.dev/tier": "gpu",
                "herd.dev/pool": "onprem-gpu",
                "nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB",
            },
            gpus=4,
            taints=[{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
        ),
    ]


class Demo:
    """The emulator, the doubles, and a way to run ``ml-jobs`` against them."""

    def __init__(self, workdir: Path, local_results: Path | None) -> None:
        self.cluster = EmulatedCluster(namespace=NAMESPACE).start()
        self.controller = JobControllerDouble(self.cluster)
        self.scheduler = SchedulerDouble(self.cluster, demo_nodes())
        self.kubelet = KubeletDouble(self.cluster, self.controller)
        self.autoscaler = AutoscalerDouble(self.cluster)
        self.volume = workdir / "nfs"  # the results volume double (claim herd-results)
        self.volume.mkdir()
        self.local_results = local_results
        self.env = {
            **os.environ,
            "KUBECONFIG": str(kubeconfig(workdir / "kubeconfig", self.cluster.url, NAMESPACE)),
            "COLUMNS": "132",
            "NO_COLOR": "1",
            "TERM": "dumb",
            "USER": "alice",
        }
        self.env.pop("ML_JOBS_RESULTS_PATH", None)
        self.transcript: list[str] = []
        self.plot: Path | None = None
        self._readers()

    def _readers(self) -> None:
        """The kubelet double runs reader pods (their real shell script) as soon as they are created."""
        import asyncio

        def hook(plural: str, namespace: str, name: str) -> None:
            if plural == "pods" and "-results-" in name:
                loop = asyncio.get_running_loop()
                loop.run_in_executor(None, self.kubelet.run_reader, name, {"herd-results": self.volume})

        self.cluster._created_hooks.append(hook)

    def ml_jobs(self, *args: str, show: str | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-c", "from ml_jobs.cli import main; main()", *args]
        env = {**self.env, "PYTHONPATH": str(REPO)}
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=cwd, timeout=120, check=False)
        shown = show or "ml-jobs " + " ".join(args)
        out = (proc.stdout + proc.stderr).rstrip()
        self.transcript.append(
            f"$ {shown}\n{out}" + (f"\n[exit status {proc.returncode}]" if proc.returncode else "")
        )
        return proc

    def note(self, text: str) -> None:
        self.transcript.append(f"# {text}")

    # ---- what the cluster does between commands (doubles)
    def pods(self) -> list[dict[str, Any]]:
        return self.controller.pods(EXPERIMENT)

    def index(self, pod: dict[str, Any]) -> int:
        return int(pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"])

    def run_log(self, i: int) -> str:
        if self.local_results is None:
            return f"epoch 30: val accuracy {0.9 + i / 1000:.4f}\n"
        logs = sorted((self.local_results / EXPERIMENT / f"run-{i:05d}" / "logs").glob("*.log"))
        return logs[-1].read_text(encoding="utf-8") if logs else ""

    def write_results(self, i: int) -> None:
        dst = self.volume / EXPERIMENT / f"run-{i:05d}"
        dst.mkdir(parents=True, exist_ok=True)
        if self.local_results is not None:
            src = self.local_results / EXPERIMENT / f"run-{i:05d}"
            for name in ("metrics.json", "params.json"):
                shutil.copy(src / name, dst / name)
        else:
            (dst / "metrics.json").write_text(json.dumps({"val_accuracy": 0.9 + i / 1000}))

    def schedule_pending(self, started: Callable[[int], bool] = lambda i: True) -> None:
        for p in self.pods():
            name = p["metadata"]["name"]
            if p["status"]["phase"] != "Pending":
                continue
            placed = p["spec"].get("nodeName") or self.scheduler.schedule(name)
            if placed and started(self.index(p)):
                self.kubelet.start(name, log=self.run_log(self.index(p)).split("\n")[0] + "\n")

    def finish(self, which: Callable[[int], bool]) -> None:
        for p in self.pods():
            i = self.index(p)
            if p["status"]["phase"] == "Running" and which(i):
                self.write_results(i)
                full = self.run_log(i)
                first = full.split("\n")[0] + "\n"
                self.kubelet.finish(
                    p["metadata"]["name"], 0, log=full.removeprefix(first), message=self.termination_message(i)
                )

    def termination_message(self, i: int) -> str:
        """What the entry shim writes to the run's termination log: its metrics.json, by the shim's own code."""
        metrics = json.loads((self.volume / EXPERIMENT / f"run-{i:05d}" / "metrics.json").read_text())
        return layout.termination_message(metrics, "val_accuracy") or ""

    def close(self) -> None:
        self.cluster.stop()


def run(local_results: Path | None, plot_out: Path | None = None) -> list[str]:
    with tempfile.TemporaryDirectory(prefix="ml-jobs-demo-") as tmp:
        demo = Demo(Path(tmp), local_results)
        try:
            script(demo, Path(tmp))
        finally:
            demo.close()
        if plot_out is not None and demo.plot is not None and demo.plot.exists():
            shutil.copy(demo.plot, plot_out)
        return demo.transcript


def script(demo: Demo, tmp: Path) -> None:
    spec = str(SPEC.relative_to(REPO))
    demo.ml_jobs("submit", spec)
    demo.ml_jobs("submit", spec)

    changed = tmp / "digits-sweep.yaml"
    changed.write_text(SPEC.read_text(encoding="utf-8").replace("count: 3", "count: 4"), encoding="utf-8")
    demo.ml_jobs(
        "submit", str(changed), show="ml-jobs submit digits-sweep.yaml   # the same name, a changed sweep"
    )

    demo.note("the Job controller creates 12 pods; 8 fit on the two 4-CPU servers, 4 wait; the autoscaler reacts")
    demo.controller.sync(EXPERIMENT)
    demo.schedule_pending()
    waiting = [p for p in demo.pods() if not p["spec"].get("nodeName")]
    demo.autoscaler.triggered(waiting[0]["metadata"]["name"], BURST_GROUP, 0, 1, BURST_MAX)
    demo.finish(lambda i: i in {0, 1, 2})
    demo.ml_jobs("status", EXPERIMENT)
    demo.ml_jobs("logs", EXPERIMENT, "run-00003")

    demo.note("runs finish; the freed CPUs take the waiting runs; all 12 succeed")
    for _ in range(4):
        demo.finish(lambda i: True)
        demo.schedule_pending()
    demo.ml_jobs("status", EXPERIMENT)  # the metrics come from the pods' termination messages
    demo.ml_jobs("results", EXPERIMENT, "--plot", "digits.png", cwd=tmp)
    demo.plot = tmp / "digits.png"
    demo.ml_jobs("results", EXPERIMENT, "--csv", "--limit", "3")
    demo.ml_jobs("ls")

    demo.note("the Job's TTL (ttlSecondsAfterFinished: 3d) removes the Job, its pods and its sweep ConfigMap")
    demo.cluster._on_loop(lambda: None)
    api = demo.cluster.api()
    api.delete("jobs", EXPERIMENT)
    api.close()
    demo.ml_jobs("ls")
    demo.ml_jobs("results", EXPERIMENT, "--limit", "3")
    demo.ml_jobs("logs", EXPERIMENT, "3")

    demo.ml_jobs("submit", str(changed), "--new-revision", show="ml-jobs submit digits-sweep.yaml --new-revision")
    demo.controller.sync("digits-sweep-r2")
    demo.ml_jobs("cancel", EXPERIMENT, "--yes")
    demo.ml_jobs("status", "digits-sweep", "--revision", "2")
    demo.ml_jobs("status", "nope")
    demo.cluster.inject("POST", "/jobs$", 403)
    bad = tmp / "other.yaml"
    bad.write_text(
        SPEC.read_text(encoding="utf-8").replace("name: digits-sweep", "name: other-sweep"), encoding="utf-8"
    )
    demo.ml_jobs("submit", str(bad), show="ml-jobs submit other-sweep.yaml   # RBAC denies creating Jobs here")
    demo.ml_jobs("ls")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--local-results", type=Path, help="results root of a local run of examples/digits-sweep.yaml"
    )
    parser.add_argument("--plot-out", type=Path, help="keep the PNG that `results --plot` wrote")
    args = parser.parse_args()
    print("\n\n".join(run(args.local_results, args.plot_out)))


if __name__ == "__main__":
    main()
