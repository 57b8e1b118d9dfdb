"""Drive the real ``ml-jobs`` CLI through each team-queue state on a local real cluster with the real Kueue
controller, and print what ``status`` says above its run table (the captured why-pending lines in
docs/engineers/queues.md are this output).

The cluster is started for this run with the teams' LocalQueues (``LocalCluster(team_queues=True)``, what
``HERD_LOCAL_CLUSTER_TEAM_QUEUES=1 scripts/local-cluster.sh up`` starts): the example stack's flavors and
ClusterQueues as infra derives them, the example site's KWOK nodes; alice runs ``ml-jobs`` as herself in
``vision``, the nlp team's sweep is submitted by the admin. Not real: KWOK's nodes run no container (each run
holds its GPU until its pod is deleted, ``HERD_SIMULATED_HOLD``), and no autoscaler adds the cloud pool's nodes
(Kueue admits by quota; the pods admitted to the cloud pool wait for a node).

    .venv/bin/python -m tests.ml_jobs.cluster.queue_demo
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from herd_local.cluster import LocalCluster
from herd_local.ports import free_base
from ml_jobs import queueing
from tests.ml_jobs.cluster.readme_demo import REPO, Demo

NAMESPACE = "vision"
OTHER_TEAM = "nlp"


def sweep(workdir: Path, name: str, runs: int, priority: str) -> Path:
    """``runs`` one-GPU runs at once, any GPU product, each holding its GPU until its pod is deleted."""
    doc = {
        "name": name,
        "image": "registry.example.com/vision/train:1.0",
        "command": ["python", "-m", "train"],
        "resources": {"cpu": "1", "memory": "4Gi", "gpus": 1},
        "priority": priority,
        "parallelism": runs,
        "sweep": {"grid": {"seed": list(range(runs))}},
        "env": {"HERD_SIMULATED_HOLD": "1"},
    }
    path = workdir / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


class QueueDemo(Demo):
    def workload(self, job: str, namespace: str = NAMESPACE) -> dict[str, Any]:
        uid = json.loads(self.kubectl("get", "job", job, "-n", namespace, "-o", "json"))["metadata"]["uid"]
        found = json.loads(
            self.kubectl(
                "get", "workloads", "-n", namespace, "-l", f"{queueing.GROUP}/job-uid={uid}", "-o", "json"
            )
        )["items"]
        return found[0] if found else {}

    def condition(self, job: str, kind: str, namespace: str = NAMESPACE) -> dict[str, Any] | None:
        for c in self.workload(job, namespace).get("status", {}).get("conditions", []):
            if c["type"] == kind and c["status"] == "True":
                return c
        return None

    def status(self, name: str) -> None:
        """``ml-jobs status NAME``, its head only (the lines above the run table)."""
        proc = self.ml_jobs("status", name)
        out = (proc.stdout + proc.stderr).rstrip().splitlines()
        head = []
        for line in out:
            if line.lstrip().startswith("run "):  # the run table's header
                break
            head.append(line.rstrip())
        self.transcript[-1] = f"$ ml-jobs status {name}\n" + "\n".join(head).rstrip()

    def check_shares(self) -> None:
        """``herd-ops check-shares`` as the cluster's admin (an operator's command)."""
        kubeconfig = self.cluster.admin_kubeconfig
        cmd = [sys.executable, "-m", "herd_ops.cli", "check-shares", "--kubeconfig", str(kubeconfig)]
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=120, check=False)
        out = (proc.stdout + proc.stderr).rstrip()
        status = f"\n[exit status {proc.returncode}]" if proc.returncode else ""
        self.transcript.append(f"$ herd-ops check-shares --kubeconfig admin.conf\n{out}{status}")

    def submit(self, name: str, runs: int, priority: str) -> None:
        """``ml-jobs submit`` as alice; the transcript says what was submitted (its output is the usual)."""
        proc = self.ml_jobs("submit", sweep(self.workdir, name, runs, priority).name)
        if proc.returncode:
            raise RuntimeError(f"submit {name}: {proc.stderr.strip()}")
        many = f"{runs} one-GPU runs at once" if runs > 1 else "one one-GPU run"
        self.transcript[-1] = f"# alice submits {name}: {many}, priority {priority}"

    def other_team_submits(self, spec: Path) -> None:
        env = {**self.env, "KUBECONFIG": str(self.cluster.admin_kubeconfig), "USER": "bob"}
        cmd = [sys.executable, "-c", "from ml_jobs.cli import main; main()", "submit", spec.name, "-n", OTHER_TEAM]
        subprocess.run(cmd, env=env, cwd=self.workdir, capture_output=True, text=True, timeout=180, check=True)


def script(demo: QueueDemo) -> None:
    demo.check_shares()
    demo.note("vision: 8 GPUs in all, 6 of them on-prem, 2 in the cloud at most; nlp's 3 on-prem GPUs are idle")
    demo.submit("low-sweep", 8, "low")
    demo.wait("low-sweep admitted", lambda: demo.condition("low-sweep", "Admitted"))
    demo.status("low-sweep")

    demo.note("nlp submits 3 runs: it takes back the 2 GPUs vision borrowed")
    demo.other_team_submits(sweep(demo.workdir, "nlp-sweep", 3, "normal"))
    demo.wait(
        "low-sweep admitted again after the reclaim",
        lambda: demo.condition("low-sweep", "Admitted") and demo.condition("low-sweep", "Requeued"),
    )
    demo.status("low-sweep")

    demo.submit("cloud-sweep", 2, "low")
    demo.wait("cloud-sweep admitted", lambda: demo.condition("cloud-sweep", "Admitted"))
    demo.status("cloud-sweep")

    demo.note("a high-priority sweep needs the team's 6 on-prem GPUs")
    demo.submit("urgent-sweep", 6, "high")
    demo.wait("urgent-sweep admitted", lambda: demo.condition("urgent-sweep", "Admitted"))
    demo.wait("low-sweep preempted", lambda: demo.condition("low-sweep", "Preempted"))
    demo.wait(
        "low-sweep's pods gone",
        lambda: (
            not json.loads(
                demo.kubectl(
                    "get", "pods", "-n", NAMESPACE, "-l", "batch.kubernetes.io/job-name=low-sweep", "-o", "json"
                )
            )["items"]
        ),
    )
    demo.status("low-sweep")

    demo.submit("next-sweep", 1, "low")

    def pending_with_reason() -> bool:
        conditions = demo.workload("next-sweep").get("status", {}).get("conditions") or []
        reserved = next((c for c in conditions if c["type"] == "QuotaReserved"), {})
        return reserved.get("status") == "False" and "insufficient" in reserved.get("message", "")

    demo.wait("next-sweep pending with Kueue's reason", pending_with_reason)
    time.sleep(1)
    demo.note("it waits behind the preempted sweep: equal priority, first come first served")
    demo.status("next-sweep")
    demo.ml_jobs("ls")
    demo.note("two of the GPU servers go away (cordoned for repair, say)")
    for node in ("gpu-01", "gpu-02"):
        demo.kubectl("cordon", node)
    demo.check_shares()


def run() -> list[str]:
    with tempfile.TemporaryDirectory(prefix="ml-jobs-queues-") as tmp:
        workdir = Path(tmp) / "work"
        workdir.mkdir()
        cluster = LocalCluster(Path(tmp) / "cluster", free_base(), team_queues=True)
        cluster.up(log=lambda _m: None)
        try:
            demo = QueueDemo(cluster, workdir, None)
            demo.env["PYTHONPATH"] = str(REPO)
            script(demo)
        finally:
            cluster.down(quiet=True)
        return demo.transcript


def main() -> None:
    print("\n\n".join(run()))


if __name__ == "__main__":
    main()
