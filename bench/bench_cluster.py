"""Submit and status of sweeps of 10, 1,000 and 10,000 runs on the local real cluster: ml_jobs (one Indexed Job)
vs one Job per run, side by side in one run.

The cluster is the real one the tests use (``herd_local.cluster``: upstream kube-apiserver, controller manager
and scheduler at the pinned release, KWOK nodes); requests go through the tests' proxy (``tests/ml_jobs/cluster/
faults.py``), which counts them and the bytes each side sent and read, injecting nothing. Runs ask for little CPU
so they fit on the example site's CPU servers; KWOK ends them as their ``env`` says.

- **submit**, ml_jobs: ``ml_jobs.kube.submit``. Naive: one ``batch/v1`` Job per run (the same pod template,
  parameters as env vars), one POST each.
- **status, running**: right after submit, the first runs running (ml_jobs' default parallelism, every naive Job).
  ml_jobs: ``sweep_status`` (registry, Job, the Job's pods by label, events while runs are pending). Naive: for
  every run, GET its Job and list its pods — the loop people write around ``kubectl get job``.
- **status, finished** (ml_jobs only): the sweep run to its end by the real Job controller; the first look reads
  the pods once and records the end in the registry, later looks read registry and Job only. The naive loop costs
  the same two requests per run whether its Jobs are running or done.

    .venv/bin/python bench/bench_cluster.py            # 10, 1000, 10000 (running 10,000 runs takes minutes)
    .venv/bin/python bench/bench_cluster.py --sizes 10 1000
"""

from __future__ import annotations

import argparse
import copy
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from herd_local.cluster import started
from herd_local.objects import stand_in_volumes
from herd_local.ports import free_base
from ml_jobs.kube import Api, submit, sweep_status
from ml_jobs.render import render
from ml_jobs.spec import Experiment
from tests.conftest import Admin
from tests.ml_jobs.cluster.faults import FaultProxy

NAMESPACE = "bench"


def experiment(runs: int, *, hold: bool, parallelism: int | None = None) -> Experiment:
    env = {"HERD_SIMULATED_HOLD": "1"} if hold else {"HERD_SIMULATED_DURATION": "0s"}
    return Experiment(
        name=f"bench-{runs}" + ("" if hold else "-done"),
        image="registry.example.com/nlp/bert:2.1",
        command=["python", "-m", "train"],
        args=["--lr", "{{ lr }}", "--batch", "{{ batch }}"],
        env=env,
        resources={"cpu": "10m", "memory": "16Mi"},
        parallelism=parallelism,
        objective={"metric": "accuracy", "goal": "max"},
        sweep={
            "random": {
                "seed": 1,
                "count": runs,
                "params": {"lr": {"loguniform": [1e-5, 1e-2]}, "batch": {"choice": [16, 32, 64]}},
            }
        },
    )


def naive_jobs(exp: Experiment) -> list[dict[str, Any]]:
    """One plain Job per run: the rendered pod template, the run's parameters as environment variables."""
    base = render(exp, namespace=NAMESPACE, owner="bench").job
    jobs = []
    for i in range(exp.runs):
        job = copy.deepcopy(base)
        job["metadata"]["name"] = f"{exp.name}-{i}"
        spec = job["spec"]
        for key in ("completionMode", "backoffLimitPerIndex", "podFailurePolicy", "completions", "parallelism"):
            spec.pop(key, None)
        spec["backoffLimit"] = 2
        container = spec["template"]["spec"]["containers"][0]
        container["env"] = [
            {"name": f"PARAM_{k.upper()}", "value": str(v)} for k, v in exp.sweep.params(i).items()
        ]
        container["env"].append({"name": "HERD_SIMULATED_HOLD", "value": "1"})
        jobs.append(job)
    return jobs


class Meter:
    """Requests, bytes (sent + read) and wall time of one step, through the counting proxy."""

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy

    def __call__(self, fn: Callable[[], Any]) -> tuple[int, int, float]:
        self.proxy.reset_log()
        start = time.perf_counter()
        fn()
        wall = time.perf_counter() - start
        log = list(self.proxy.log)
        return len(log), sum(r.sent + r.read for r in log), wall


def wait(what: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"bench_cluster: timed out waiting for {what}")
        time.sleep(1)


def bench(
    runs: int, cluster: Any, admin: Admin, proxy: FaultProxy, show: Callable[[int, dict[str, Any]], None]
) -> dict[str, tuple[int, int, float]]:
    api = Api(_configuration(proxy), NAMESPACE, timeout=600)
    meter = Meter(proxy)
    out: dict[str, tuple[int, int, float]] = {}
    pods_path = f"/api/v1/namespaces/{NAMESPACE}/pods"

    def pod_count(selector: str, phase: str) -> int:
        q = f"?labelSelector={selector}&fieldSelector=status.phase%3D{phase}"
        return len(admin.request("GET", pods_path + q)["items"])

    # ml_jobs, running: the first runs (default parallelism) running, the rest waiting their turn.
    held = experiment(runs, hold=True)
    out["submit ml_jobs"] = meter(lambda: submit(api, held, owner="bench"))
    first = admin.request("GET", f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs/{held.name}")["spec"]["parallelism"]
    wait("the first runs running", lambda: pod_count(f"job-name={held.name}", "Running") >= first, 300)
    out["status running ml_jobs"] = meter(lambda: sweep_status(api, held.name))

    # naive: one Job per run, every one running (or pending where the nodes are full).
    jobs = naive_jobs(held)
    out["submit naive"] = meter(lambda: [api.create("jobs", j) for j in jobs])

    def naive_status() -> None:
        for j in jobs:
            job = api.get("jobs", j["metadata"]["name"])
            api.list("pods", label_selector=f"batch.kubernetes.io/controller-uid={job['metadata']['uid']}")

    out["status running naive"] = meter(naive_status)
    show(runs, out)
    # Clear the namespace's Jobs (and their pods) before the finished sweep runs.
    admin.request(
        "DELETE", f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs?propagationPolicy=Background", timeout=900
    )
    wait("the running sweeps' pods gone", lambda: pod_count("", "Running") == 0, 600)

    # ml_jobs, finished: run to its end by the real Job controller.
    done = experiment(runs, hold=False, parallelism=min(runs, 300))
    submit(api, done, owner="bench")
    wait(
        f"{runs} runs done",
        lambda: sweep_status(api, done.name, explain=False, write_record=False).finished,
        3600,
    )
    out["status finished ml_jobs (first look)"] = meter(lambda: sweep_status(api, done.name))
    out["status finished ml_jobs (recorded)"] = meter(lambda: sweep_status(api, done.name))
    show(runs, out)
    admin.request(
        "DELETE", f"/apis/batch/v1/namespaces/{NAMESPACE}/jobs?propagationPolicy=Background", timeout=900
    )
    admin.request("DELETE", f"/api/v1/namespaces/{NAMESPACE}/configmaps")
    api.close()
    return out


def _configuration(proxy: FaultProxy) -> Any:
    from kubernetes import client

    cfg = client.Configuration()
    cfg.host = proxy.url
    cfg.retries = False
    return cfg


def _kb(n: int) -> str:
    return f"{n / 1024:,.0f} KiB" if n >= 1024 else f"{n} B"


def show_rows(runs: int, r: dict[str, Any]) -> None:
    """Print what has been measured for ``runs`` as soon as it is: submit and status side by side, then the
    finished sweep's two looks."""
    if "status finished ml_jobs (recorded)" not in r:
        for op, naive in (("submit", "submit naive"), ("status running", "status running naive")):
            (mreq, mb, mt), (nreq, nb, nt) = r[f"{op} ml_jobs"], r[naive]
            ratio = f"{nreq / mreq:.0f}x / {nb / mb:.1f}x / {nt / mt:.1f}x"
            print(
                f"{runs:>6}  {op:<38}  {mreq:>11}  {nreq:>9}  {_kb(mb):>12}  {_kb(nb):>11}  "
                f"{mt:>9.3f}  {nt:>8.3f}  {ratio:>24}",
                flush=True,
            )
        return
    for op in ("status finished ml_jobs (first look)", "status finished ml_jobs (recorded)"):
        mreq, mb, mt = r[op]
        print(f"{runs:>6}  {op.replace(' ml_jobs', ''):<38}  {mreq:>11}  {'':>9}  {_kb(mb):>12}  "
              f"{'':>11}  {mt:>9.3f}", flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1000, 10000])
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the cluster on the way out, as on Ctrl-C
    with tempfile.TemporaryDirectory() as tmp, started(Path(tmp) / "cluster", free_base()) as cluster:
        admin = Admin(cluster)
        admin.request("POST", "/api/v1/namespaces", {"metadata": {"name": NAMESPACE}})
        claim = {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": "herd-results", "namespace": NAMESPACE},
            "spec": {
                "accessModes": ["ReadWriteMany"],
                "storageClassName": "herd-nfs",
                "resources": {"requests": {"storage": "1Gi"}},
            },
        }
        cluster.apply([claim, *stand_in_volumes([claim], cluster.directory / "volumes")])
        wait("the bench namespace's ServiceAccount", lambda: admin.request(
            "GET", f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/default") is not None, 60)  # fmt: skip
        pki = cluster.directory / "pki"
        proxy = FaultProxy(cluster.server, str(pki / "ca.crt"), str(pki / "admin.crt"), str(pki / "admin.key"))
        proxy.start()
        print(f"local real cluster {cluster.version()}, namespace {NAMESPACE}, as admin, through a counting proxy")
        header = (
            f"{'runs':>6}  {'op':<38}  {'ml_jobs req':>11}  {'naive req':>9}  {'ml_jobs read':>12}  "
            f"{'naive read':>11}  {'ml_jobs s':>9}  {'naive s':>8}  {'req / bytes / time ratio':>24}"
        )
        print(header)
        print("-" * len(header))
        try:
            for runs in args.sizes:
                bench(runs, cluster, admin, proxy, show_rows)
        finally:
            proxy.stop()


if __name__ == "__main__":
    main()
