"""Render + validate one sweep as ml-jobs does (1 ConfigMap + 1 Indexed Job) against a naive one-Job-per-run
rendering of the same sweep, for 10, 1,000 and 10,000 runs. Prints objects, bytes, time and the ratios.

    .venv/bin/python bench/bench_render.py            # about two minutes, most of it validating naive Jobs

Both sides are validated with kubernetes-validate (strict). ml-jobs' objects are checked against all five
supported minors (1.33-1.37); the naive Jobs against 1.33 only, to keep the run short — so the time ratio
understates ml-jobs' advantage by up to 5x.
"""

from __future__ import annotations

import copy
import json
import time

from ml_jobs import _shim, layout
from ml_jobs.render import KUBERNETES_VERSIONS, check_objects, render, validate_schema
from ml_jobs.spec import Experiment

SIZES = (10, 1_000, 10_000)


def experiment(runs: int) -> Experiment:
    return Experiment(
        name="bench-sweep",
        image="registry.example.com/team/train:1.0",
        command=["python", "train.py"],
        args=["--lr", "{{ lr }}", "--dropout", "{{ dropout }}", "--layers", "{{ layers }}"],
        resources={"cpu": "4", "memory": "16Gi", "gpus": 1, "gpu_product": "NVIDIA-L4"},
        nodes={"location": ["onprem", "cloud"], "prefer": {"location": "onprem"}},
        retries=2,
        final_exit_codes=[2],
        objective={"metric": "val_loss", "goal": "min"},
        sweep={
            "random": {
                "seed": 1,
                "count": runs,
                "params": {
                    "lr": {"loguniform": [1e-5, 1e-1]},
                    "dropout": {"uniform": [0.0, 0.5]},
                    "layers": {"randint": [2, 12]},
                },
            }
        },
    )


def naive(exp: Experiment) -> list[dict]:
    """One plain Job per run, parameters baked into its command and environment (no ConfigMap, no shim)."""
    template = render(exp, owner="bench").job
    jobs = []
    for index, params in enumerate(exp.sweep.expand()):
        job = copy.deepcopy(template)
        job["metadata"]["name"] = f"{exp.name}-{index}"
        spec = job["spec"]
        for key in ("completionMode", "completions", "parallelism", "backoffLimitPerIndex"):
            spec.pop(key)
        spec["backoffLimit"] = exp.retries
        spec["podFailurePolicy"]["rules"][1]["action"] = "FailJob"
        pod = spec["template"]["spec"]
        pod.pop("volumes")
        pod["volumes"] = [{"name": "results", "persistentVolumeClaim": {"claimName": exp.results.claim}}]
        container = pod["containers"][0]
        container["command"] = [_shim.substitute(a, params) for a in exp.command]
        container["args"] = [_shim.substitute(a, params) for a in exp.args]
        results = layout.run_dir(layout.experiment_dir(exp.results.mount_path, exp.name), index)
        container["env"] = [
            {"name": layout.ENV_INDEX, "value": str(index)},
            {"name": layout.ENV_RESULTS_DIR, "value": results},
            {"name": layout.ENV_CHECKPOINT_DIR, "value": f"{results}/checkpoint"},
            {"name": "PARAMS_JSON", "value": json.dumps(params)},
            *({"name": layout.param_env_name(k), "value": _shim.format_value(v)} for k, v in params.items()),
        ]
        container["volumeMounts"] = [{"name": "results", "mountPath": exp.results.mount_path}]
        jobs.append(job)
    return jobs


def size(objects: list[dict]) -> int:
    return sum(len(json.dumps(o, separators=(",", ":"))) for o in objects)


def main() -> None:
    print(f"{'runs':>7} | {'approach':<22} | {'objects':>7} | {'bytes (JSON)':>13} | {'render+validate':>15}")
    print("-" * 78)
    rows = []
    for runs in SIZES:
        exp = experiment(runs)
        t0 = time.perf_counter()
        rendered = render(exp, owner="bench")
        validate_schema(rendered.objects, KUBERNETES_VERSIONS)
        ours_s = time.perf_counter() - t0
        ours = (len(rendered.objects), size(rendered.objects), ours_s)

        t0 = time.perf_counter()
        jobs = naive(exp)
        check_objects(jobs)
        validate_schema(jobs, ("1.33",))
        naive_s = time.perf_counter() - t0
        theirs = (len(jobs), size(jobs), naive_s)
        for label, (count, nbytes, seconds) in (("ml-jobs (1 CM + 1 Job)", ours), ("naive Job per run", theirs)):
            print(f"{runs:>7,} | {label:<22} | {count:>7,} | {nbytes:>13,} | {seconds:>14.3f}s")
        rows.append((runs, ours, theirs))
    print()
    print(
        f"{'runs':>7} | {'objects naive/ml-jobs':>21} | {'bytes naive/ml-jobs':>19} | {'time naive/ml-jobs':>18}"
    )
    for runs, (oc, ob, os_), (nc, nb, ns) in rows:
        print(f"{runs:>7,} | {nc / oc:>20.0f}x | {nb / ob:>18.1f}x | {ns / os_:>17.1f}x")
    small, large = rows[0][1][1], rows[-1][1][1]
    print(f"\nml-jobs bytes, {SIZES[0]:,} vs {SIZES[-1]:,} runs: {small:,} vs {large:,} (+{large - small} B)")


if __name__ == "__main__":
    main()
