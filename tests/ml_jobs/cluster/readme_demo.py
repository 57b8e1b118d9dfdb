"""Drive the real ``ml-jobs`` CLI against a local real cluster and print the transcript (the captured session in
docs/engineers/session.md is this output).

The cluster is real and started for this run (``herd_local.cluster``, what ``scripts/local-cluster.sh up``
starts): upstream etcd, kube-apiserver, kube-controller-manager and kube-scheduler at the pinned release, the
Pulumi program's objects for the example stack, the example site's nodes. The ``ml-jobs`` commands are the real
CLI, run as subprocesses as alice with her own client certificate, in the vision team's namespace. The Job
controller, scheduler, quota, TTL controller and garbage collector are the real ones. Not real, and said so in
the transcript:

- the nodes are KWOK's: they run no container. Each run ends after ``HERD_SIMULATED_DURATION`` with the
  termination message the entry shim writes from that run's ``metrics.json`` (the shim's own
  ``layout.termination_message``), as the spec's ``env`` tells KWOK (``herd_local/kwok_stages.yaml``): the spec
  submitted is ``examples/digits-sweep.yaml`` plus that ``env``. KWOK serves no logs either;
- the two CPU servers are shrunk to 4 CPUs and the cloud pools start with no node, so the sweep does not fit;
- cluster-autoscaler needs AWS: its ``TriggeredScaleUp`` events are created through the real API in the shape it
  writes them, and the node it would add joins as a KWOK node;
- the results volume is the team claim's stand-in ``hostPath`` volume; the metrics are those of a real local run
  of the same spec (``ml-jobs run examples/digits-sweep.yaml --local``) copied onto it, so the numbers are real
  training results. ``results`` reads it mounted (``--results-path``): the reader pod needs a real node;
- the Job's TTL (3 days) is shortened to a second.

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
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from herd_local.cluster import LocalCluster, started
from herd_local.objects import node_objects
from herd_local.paths import EXAMPLE_STACK
from herd_local.ports import free_base
from ml_jobs import layout
from tests.conftest import Admin
from tests.ml_jobs.cluster.stand_ins import autoscaler_event, results_volume

REPO = Path(__file__).resolve().parents[3]
SPEC = REPO / "examples" / "digits-sweep.yaml"
EXPERIMENT = "digits-sweep"
NAMESPACE = "vision"  # alice's team on the example stack (Pulumi.example.yaml herd:teams)
CPU_SERVERS = ("cpu-01", "cpu-02")  # the example site's on-prem CPU servers (inventory/example)
SHRUNK_CPUS = "4"
BURST_POOL = "cpu-burst"  # the cloud pool a 1-CPU run bursts to (Pulumi.example.yaml herd:pools)
RUN_SECONDS = 25  # how long each simulated run runs: long enough to look at the sweep while it runs
_INDEX = "batch.kubernetes.io/job-completion-index"


def burst_pool() -> tuple[str, int, int]:
    """cluster-autoscaler's name for the burst pool's ASG (``infra.burst_pool.asg_name``), its min and max."""
    from infra import config as stack
    from infra.burst_pool import asg_name
    from infra.plan import load_stack_file

    cfg = stack.load(load_stack_file(EXAMPLE_STACK))
    pool = next(p for p in cfg.pools if p.name == BURST_POOL)
    return asg_name(cfg, pool), pool.min_size, pool.max_size


class Demo:
    """The local real cluster, what stands in for what cannot run here, and a way to run ``ml-jobs``."""

    def __init__(self, cluster: LocalCluster, workdir: Path, local_results: Path | None) -> None:
        self.cluster = cluster
        self.admin = Admin(cluster)
        self.workdir = workdir
        self.local_results = local_results
        self.env = {
            **os.environ,
            "KUBECONFIG": str(cluster.alice_kubeconfig),
            "PYTHONPATH": str(REPO),
            "COLUMNS": "132",
            "NO_COLOR": "1",
            "TERM": "dumb",
            "USER": "alice",
        }
        self.env.pop("ML_JOBS_RESULTS_PATH", None)
        self.env.pop("HERD_DEBUG", None)
        self.transcript: list[str] = []
        self.plot: Path | None = None
        self.version = cluster.version()

    # ---- ml-jobs, as alice
    def ml_jobs(self, *args: str, show: str | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-c", "from ml_jobs.cli import main; main()", *args]
        proc = subprocess.run(
            cmd, env=self.env, capture_output=True, text=True, cwd=self.workdir, timeout=180, check=False
        )
        shown = show or "ml-jobs " + " ".join(args)
        out = (proc.stdout + proc.stderr).rstrip()
        self.transcript.append(
            f"$ {shown}\n{out}" + (f"\n[exit status {proc.returncode}]" if proc.returncode else "")
        )
        return proc

    def note(self, text: str) -> None:
        self.transcript.append(f"# {text}")

    # ---- the cluster, as its admin
    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        return self.cluster.kubectl(*args, stdin=stdin)

    def pods(self, job: str = EXPERIMENT) -> list[dict[str, Any]]:
        out = self.kubectl(
            "get", "pods", "-n", NAMESPACE, "-l", f"batch.kubernetes.io/job-name={job}", "-o", "json"
        )
        return json.loads(out)["items"]

    def wait(self, what: str, check: Callable[[], Any], timeout: float = 120.0) -> Any:
        deadline = time.monotonic() + timeout
        while not (value := check()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(0.25)
        return value

    def index(self, pod: dict[str, Any]) -> int:
        return int(pod["metadata"]["annotations"][_INDEX])

    # ---- the example site's slice, and its stand-ins
    def shrink_and_empty_the_cloud(self) -> None:
        """The CPU servers shrunk to 4 CPUs; the cloud pools' nodes removed (their minimum is 0)."""
        capacity = {"status": {"capacity": {"cpu": SHRUNK_CPUS}, "allocatable": {"cpu": SHRUNK_CPUS}}}
        for name in CPU_SERVERS:
            self.kubectl("patch", "node", name, "--subresource=status", "--type=merge", "-p", json.dumps(capacity))
        for node in self.cloud_nodes():
            self.kubectl("delete", "node", node["metadata"]["name"])

    def cloud_nodes(self) -> list[dict[str, Any]]:
        return [
            n for n in node_objects(self.version) if n["metadata"]["labels"].get("herd.dev/location") == "cloud"
        ]

    def burst_node_joins(self) -> str:
        """What the autoscaler's scale-up ends in: the burst pool's node registers (a KWOK node)."""
        node = next(n for n in self.cloud_nodes() if n["metadata"]["labels"].get("herd.dev/pool") == BURST_POOL)
        self.kubectl("create", "-f", "-", stdin=json.dumps(node))
        return str(node["metadata"]["name"])

    def autoscaler_scales_up(self, pods: list[dict[str, Any]]) -> None:
        """cluster-autoscaler's TriggeredScaleUp on each pod it scales up for (stand-in: it needs AWS)."""
        group, low, high = burst_pool()
        for pod in pods:
            message = f"pod triggered scale-up: [{{{group} {low}->{low + 1} (max: {high})}}]"
            autoscaler_event(self.admin, pod, "TriggeredScaleUp", message)

    def volume(self) -> Path:
        """The directory behind the team's results claim, once the claim is bound to its stand-in volume."""

        def bound() -> bool:
            claim = self.admin.request(
                "GET", f"/api/v1/namespaces/{NAMESPACE}/persistentvolumeclaims/herd-results"
            )
            return (claim or {}).get("status", {}).get("phase") == "Bound"

        self.wait("the results claim bound", bound)
        return results_volume(self.admin, NAMESPACE)

    def metrics(self, i: int) -> dict[str, Any]:
        if self.local_results is None:
            return {"val_accuracy": 0.9 + i / 1000}
        path = self.local_results / EXPERIMENT / layout.run_name(i) / layout.METRICS_FILE_NAME
        return dict(json.loads(path.read_text(encoding="utf-8")))

    def write_results(self, runs: int) -> None:
        """The runs' metrics.json and params.json on the results volume, as the runs would have written them."""
        for i in range(runs):
            dst = Path(layout.run_dir(self.volume() / EXPERIMENT, i))
            dst.mkdir(parents=True, exist_ok=True)
            if self.local_results is not None:
                src = Path(layout.run_dir(self.local_results / EXPERIMENT, i))
                for name in (layout.METRICS_FILE_NAME, layout.PARAMS_FILE_NAME):
                    shutil.copy(src / name, dst / name)
            else:
                (dst / layout.METRICS_FILE_NAME).write_text(json.dumps(self.metrics(i)), encoding="utf-8")

    def spec(self, file: str, *, count: int, env: dict[str, str]) -> Path:
        """examples/digits-sweep.yaml (its random count changed to ``count``) plus ``env`` for KWOK."""
        doc = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
        doc["sweep"]["product"][1]["random"]["count"] = count
        doc["env"] = env
        path = self.workdir / file
        path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
        return path

    def outcomes(self, runs: int) -> dict[str, str]:
        """Each run ends after RUN_SECONDS, exit 0, with the termination message the shim writes from its
        metrics."""
        table = {str(i): {"exitCode": 0, "message": layout.termination_message(self.metrics(i), "val_accuracy")}
                 for i in range(runs)}  # fmt: skip
        return {"HERD_SIMULATED_DURATION": f"{RUN_SECONDS}s", "HERD_SIMULATED_OUTCOMES": json.dumps(table)}


def _unschedulable(pod: dict[str, Any]) -> bool:
    conditions = pod["status"].get("conditions", [])
    return any(c["type"] == "PodScheduled" and c["status"] == "False" for c in conditions)


def run(local_results: Path | None, plot_out: Path | None = None) -> list[str]:
    """Start a local real cluster, run the session, stop the cluster; the transcript, block by block."""
    with tempfile.TemporaryDirectory(prefix="ml-jobs-demo-") as tmp:
        workdir = Path(tmp) / "work"
        workdir.mkdir()
        with started(Path(tmp) / "cluster", free_base()) as cluster:
            demo = Demo(cluster, workdir, local_results)
            script(demo)
        if plot_out is not None and demo.plot is not None and demo.plot.exists():
            shutil.copy(demo.plot, plot_out)
        return demo.transcript


def script(demo: Demo) -> None:
    demo.shrink_and_empty_the_cloud()
    volume = demo.volume()  # the claim is bound: runs can be scheduled
    (demo.workdir / "herd-results").symlink_to(volume)
    spec = demo.spec("digits-sweep.yaml", count=3, env=demo.outcomes(12))
    changed = demo.spec("digits-sweep-16.yaml", count=4, env={"HERD_SIMULATED_HOLD": "1"})
    demo.note(
        "digits-sweep.yaml is examples/digits-sweep.yaml plus the env that tells KWOK's nodes how each run ends"
    )
    demo.ml_jobs("submit", spec.name)
    demo.ml_jobs("submit", spec.name)
    demo.ml_jobs("submit", changed.name, show=f"ml-jobs submit {changed.name}   # the same name, a changed sweep")

    demo.note("the Job controller creates 12 pods; 8 fit on the two 4-CPU servers, 4 wait; the autoscaler reacts")

    def waiting() -> list[dict[str, Any]]:
        pods = demo.pods()
        unschedulable = [p for p in pods if _unschedulable(p)]
        running = [p for p in pods if p["status"].get("phase") == "Running"]
        return unschedulable if len(running) == 8 and len(unschedulable) == 4 else []

    pending = demo.wait("8 runs running, 4 unschedulable", waiting)
    demo.autoscaler_scales_up(pending)
    demo.write_results(12)  # the runs write their results as they run
    demo.ml_jobs("status", EXPERIMENT)
    demo.ml_jobs("logs", EXPERIMENT, layout.run_name(min(demo.index(p) for p in pending)))

    node = demo.burst_node_joins()
    demo.note(f"the autoscaler's node {node} joins and takes the waiting runs; all 12 succeed")
    demo.wait("the Job complete", lambda: "Complete" in demo.kubectl(
        "get", "job", EXPERIMENT, "-n", NAMESPACE, "-o", "jsonpath={.status.conditions[*].type}"
    ))  # fmt: skip
    demo.ml_jobs("status", EXPERIMENT)  # the metrics come from the pods' termination messages
    demo.note("the results volume is mounted here at herd-results")
    demo.ml_jobs("results", EXPERIMENT, "--results-path", "herd-results", "--plot", "digits.png")
    demo.plot = demo.workdir / "digits.png"
    demo.ml_jobs("results", EXPERIMENT, "--results-path", "herd-results", "--csv", "--limit", "3")
    demo.ml_jobs("ls")

    demo.note(
        "the Job's TTL (ttlSecondsAfterFinished: 3d, here 1s) removes the Job, its pods and its sweep ConfigMap"
    )
    demo.kubectl(
        "patch", "job", EXPERIMENT, "-n", NAMESPACE, "--type=merge", "-p", '{"spec":{"ttlSecondsAfterFinished":1}}'
    )
    demo.wait("the Job gone", lambda: not demo.kubectl("get", "jobs", "-n", NAMESPACE, "-o", "name").strip())
    demo.wait(
        "its pods and ConfigMap collected",
        lambda: (
            not demo.pods()
            and f"configmap/{EXPERIMENT}-sweep"
            not in demo.kubectl("get", "configmaps", "-n", NAMESPACE, "-o", "name")
        ),
    )
    demo.ml_jobs("ls")
    demo.ml_jobs("results", EXPERIMENT, "--results-path", "herd-results", "--limit", "3")
    demo.ml_jobs("logs", EXPERIMENT, "3")

    demo.ml_jobs("submit", changed.name, "--new-revision")
    demo.wait(
        "revision 2 running",
        lambda: any(p["status"].get("phase") == "Running" for p in demo.pods(f"{EXPERIMENT}-r2")),
    )
    demo.ml_jobs("cancel", EXPERIMENT, "--yes")
    demo.ml_jobs("status", EXPERIMENT, "--revision", "2")
    demo.ml_jobs("status", "nope")
    other = demo.workdir / "other-sweep.yaml"
    other.write_text(
        spec.read_text(encoding="utf-8").replace(f"name: {EXPERIMENT}", "name: other-sweep"), encoding="utf-8"
    )
    demo.ml_jobs(
        "submit",
        other.name,
        "-n",
        "nlp",
        show=f"ml-jobs submit {other.name} -n nlp   # alice holds no Role in nlp",
    )
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
