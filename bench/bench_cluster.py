"""Submit and status of sweeps of 10, 1,000 and 10,000 runs: ml_jobs (one Indexed Job) vs one Job per run.

Both approaches talk to the same in-process API emulator (kmock, with the test harness's gap fillers) through the
official ``kubernetes`` client, so the figures compare request counts and client-side wall time on equal terms;
absolute times are an emulator's, not a real API server's (which adds admission, etcd writes and rate limits —
all per request, so the ratios understate the difference).

- **submit**, ml_jobs: ``ml_jobs.kube.submit`` (registry read + create, ConfigMap, Job, owner patch, registry
  update). Naive: one ``batch/v1`` Job per run (the same pod template, parameters as env vars), one POST each.
- **status**, ml_jobs: ``ml_jobs.kube.sweep_status`` (registry, Job, one label-selected pod list, events while
  runs are pending). Naive: for every run, GET its Job and list its pods — the loop people write around
  ``kubectl get job``. Every run has a pod in both cases (written into the emulator directly, uncounted).

    .venv/bin/python bench/bench_cluster.py            # 10, 1000, 10000
    .venv/bin/python bench/bench_cluster.py --sizes 10 1000
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ml_jobs import _labels as L
from ml_jobs.kube import submit, sweep_status
from ml_jobs.render import render
from ml_jobs.spec import Experiment
from tests.ml_jobs.cluster.doubles import JobControllerDouble
from tests.ml_jobs.cluster.emulator import EmulatedCluster


def experiment(runs: int) -> Experiment:
    return Experiment(
        name="bench",
        image="registry.example.com/nlp/bert:2.1",
        command=["python", "-m", "train"],
        args=["--lr", "{{ lr }}", "--batch", "{{ batch }}"],
        resources={"cpu": "4", "memory": "16Gi", "gpus": 1},
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
    base = render(exp, owner="bench").job
    jobs = []
    for i in range(exp.runs):
        job = copy.deepcopy(base)
        job["metadata"]["name"] = f"{exp.name}-{i}"
        spec = job["spec"]
        for key in ("completionMode", "backoffLimitPerIndex", "podFailurePolicy"):
            spec.pop(key, None)
        spec.update(completions=1, parallelism=1, backoffLimit=2)
        container = spec["template"]["spec"]["containers"][0]
        container["env"] = [
            {"name": f"PARAM_{k.upper()}", "value": str(v)} for k, v in exp.sweep.params(i).items()
        ]
        jobs.append(job)
    return jobs


def pod_for(job: dict[str, Any], index: int | None, controller: JobControllerDouble) -> dict[str, Any]:
    pod = controller.make_pod(job, index or 0)
    if index is None:  # a non-indexed Job's pod
        for key in (L.COMPLETION_INDEX,):
            pod["metadata"]["labels"].pop(key, None)
            pod["metadata"]["annotations"].pop(key, None)
    pod["status"] = {"phase": "Running"}
    pod["spec"]["nodeName"] = "gpu-1"
    return pod


def measure(cluster: EmulatedCluster, fn: Any) -> tuple[int, float]:
    cluster.reset_log()
    start = time.perf_counter()
    fn()
    return len(cluster.log), time.perf_counter() - start


def bench(runs: int) -> dict[str, tuple[int, float]]:
    exp = experiment(runs)
    out: dict[str, tuple[int, float]] = {}

    cluster = EmulatedCluster(namespace="bench").start()
    try:
        api = cluster.api(timeout=120)
        controller = JobControllerDouble(cluster)
        out["submit ml_jobs"] = measure(cluster, lambda: submit(api, exp, owner="bench"))
        job = cluster.get("jobs", "bench")
        assert job is not None
        cluster.put_many("pods", [pod_for(job, i, controller) for i in range(runs)])
        out["status ml_jobs"] = measure(cluster, lambda: sweep_status(api, "bench"))
        api.close()
    finally:
        cluster.stop()

    cluster = EmulatedCluster(namespace="bench").start()
    try:
        api = cluster.api(timeout=120)
        controller = JobControllerDouble(cluster)
        jobs = naive_jobs(exp)

        def naive_submit() -> None:
            for j in jobs:
                api.create("jobs", j)

        out["submit naive"] = measure(cluster, naive_submit)
        created = {j["metadata"]["name"]: j for j in cluster.all("jobs")}
        cluster.put_many("pods", [pod_for(created[f"bench-{i}"], None, controller) for i in range(runs)])

        def naive_status() -> None:
            for i in range(runs):
                j = api.get("jobs", f"bench-{i}")
                api.list("pods", label_selector=f"batch.kubernetes.io/controller-uid={j['metadata']['uid']}")

        out["status naive"] = measure(cluster, naive_status)
        api.close()
    finally:
        cluster.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1000, 10000])
    args = parser.parse_args()
    header = (
        f"{'runs':>6}  {'op':<6}  {'ml_jobs req':>11}  {'naive req':>9}  {'req ratio':>9}  "
        f"{'ml_jobs s':>9}  {'naive s':>8}  {'time ratio':>10}"
    )
    print(header)
    print("-" * len(header))
    for runs in args.sizes:
        r = bench(runs)
        for op in ("submit", "status"):
            (mreq, mt), (nreq, nt) = r[f"{op} ml_jobs"], r[f"{op} naive"]
            print(
                f"{runs:>6}  {op:<6}  {mreq:>11}  {nreq:>9}  {nreq / mreq:>8.0f}x  "
                f"{mt:>9.3f}  {nt:>8.3f}  {nt / mt:>9.1f}x",
                flush=True,
            )


if __name__ == "__main__":
    main()
