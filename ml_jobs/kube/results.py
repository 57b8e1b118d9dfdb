"""Read every run's ``metrics.json`` of an experiment from the results volume.

Two ways to the same files (layout: ``ml_jobs.layout``, ``<root>/<experiment>/<run>/metrics.json``):

- **mounted**: the results volume (NFS) is mounted on the workstation; the path is given (``--results-path``) or
  configured (``$ML_JOBS_RESULTS_PATH``) and the files are read directly — no API request at all;
- **reader pod**: otherwise a short-lived pod mounts the same claim read-only, prints every ``metrics.json`` with a
  header line, and is deleted as soon as its log is read (also on error or Ctrl-C). Requests: create, a GET per
  second while it starts, its log, delete — none per run.

Run states come from the sweep's status (Job + one pod list) while the Job exists, else from the registry.

What is found is recorded as the runs' final metrics in the registry when the sweep has ended, so ``ls`` and
``results`` keep working after the Job's TTL.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ml_jobs import _labels as L
from ml_jobs import results as _results
from ml_jobs.errors import HerdError, ResultsError
from ml_jobs.kube import pending, registry
from ml_jobs.kube.status import sweep_status
from ml_jobs.results import ExperimentResults

if TYPE_CHECKING:
    from ml_jobs.kube._api import Api

RESULTS_PATH_ENV = "ML_JOBS_RESULTS_PATH"
READER_IMAGE = "busybox:1.37.0"
READER_MOUNT = "/results"
READER_DEADLINE_SECONDS = 300
_HEADER = "==> "
_END = "==| files: "  # the last line: how many files were printed, so a truncated log is noticed
# The reader's whole program: POSIX sh, no dependency on the experiment's image. One header line per file, then
# the file on one line (metrics.json is JSON; newlines inside it are dropped so every file is exactly one line).
READER_SCRIPT = (
    'cd "$RESULTS_DIR" 2>/dev/null || { echo "no directory $RESULTS_DIR on the results volume" >&2; exit 3; }\n'
    "n=0\n"
    "for f in */metrics.json */params.json; do\n"
    '  [ -f "$f" ] || continue\n'
    f"  printf '{_HEADER}%s\\n' \"$f\"\n"
    "  tr -d '\\n' < \"$f\"; echo\n"
    "  n=$((n + 1))\n"
    "done\n"
    f"echo '{_END}'\"$n\"\n"
)


def parse_reader_output(lines: list[str]) -> dict[str, str]:
    """``{"run-00003/metrics.json": text, ...}`` from the reader pod's log.

    Raises:
        ResultsError: the log does not end with the file count, or the count differs (a rotated or cut log).
    """
    out: dict[str, str] = {}
    current: str | None = None
    trailer = next((line for line in reversed(lines) if line.strip()), "")
    if not trailer.startswith(_END) or not trailer[len(_END) :].strip().isdigit():
        raise ResultsError("the reader pod's log is incomplete (no file count at its end); use --results-path")
    expected = int(trailer[len(_END) :])
    for line in lines:
        if line.startswith(_END):
            break
        if line.startswith(_HEADER):
            current = line[len(_HEADER) :].strip()
            continue
        if current is not None:
            out[current] = line
            current = None
    if len(out) != expected:
        raise ResultsError(
            f"the reader pod printed {expected} files but its log holds {len(out)} (the kubelet rotates container "
            "logs at containerLogMaxSize); read the volume directly with --results-path"
        )
    return out


def _materialise(files: dict[str, str], root: Path, experiment_dir: str) -> None:
    """Lay the reader's files out under ``root`` as on the volume, so the one results reader reads them."""
    from ml_jobs import layout

    allowed = {layout.METRICS_FILE_NAME, layout.PARAMS_FILE_NAME}
    for rel, text in files.items():
        run, _, name = rel.partition("/")
        if layout.run_index(run) is None or name not in allowed:
            continue  # only run-NNNNN/{metrics,params}.json: never write outside the temporary root
        d = root / experiment_dir / run
        d.mkdir(parents=True, exist_ok=True)
        (d / name).write_text(text, encoding="utf-8")


def reader_pod(experiment: str, claim: str, experiment_dir: str, *, image: str = READER_IMAGE) -> dict[str, Any]:
    """The reader pod: mounts ``claim`` read-only and prints every run's metrics.json."""
    name = f"{experiment[:40]}-results-{uuid.uuid4().hex[:6]}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {L.EXPERIMENT: experiment, L.COMPONENT: "reader", L.MANAGED_BY: L.MANAGER},
        },
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": READER_DEADLINE_SECONDS,
            "terminationGracePeriodSeconds": 1,
            "automountServiceAccountToken": False,
            # Admitted under the "restricted" Pod Security Standard; reads world-readable result files as nobody.
            "securityContext": {
                "runAsNonRoot": True,
                "runAsUser": 65534,
                "runAsGroup": 65534,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [
                {
                    "name": "reader",
                    "image": image,
                    "command": ["sh", "-c", READER_SCRIPT],
                    "env": [{"name": "RESULTS_DIR", "value": posixpath.join(READER_MOUNT, experiment_dir)}],
                    "volumeMounts": [{"name": "results", "mountPath": READER_MOUNT, "readOnly": True}],
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "16Mi"},
                        "limits": {"cpu": "200m", "memory": "64Mi"},
                    },
                    "securityContext": {
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "capabilities": {"drop": ["ALL"]},
                    },
                }
            ],
            "volumes": [{"name": "results", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}],
        },
    }


def read_with_pod(
    api: Api,
    experiment: str,
    claim: str,
    experiment_dir: str,
    *,
    image: str = READER_IMAGE,
    timeout: float = 120.0,
    poll: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[dict[str, str], str]:
    """Run the reader pod, read its log, delete it (always). Returns ({relative path: text}, pod name)."""
    pod = reader_pod(experiment, claim, experiment_dir, image=image)
    name = pod["metadata"]["name"]
    api.create("pods", pod)
    try:
        waited = 0.0
        while True:
            current = api.get("pods", name)
            phase = (current.get("status") or {}).get("phase")
            if phase in {"Succeeded", "Failed"}:
                break
            if waited >= timeout:
                causes = pending.explain([(0, current)], job=None, events=api.list("events"))
                why = "; ".join(c.text for c in causes) or f"phase {phase}"
                raise ResultsError(f"reader pod {name} did not finish within {timeout:g}s: {why}")
            sleep(poll)
            waited += poll
        lines = list(api.log(name))
        if phase == "Failed":
            raise ResultsError(f"reader pod {name} failed reading claim {claim!r}: {' '.join(lines)[-300:]}")
        return parse_reader_output(lines), name
    finally:
        # If even the delete fails, the pod's activeDeadlineSeconds still ends it.
        with contextlib.suppress(HerdError):
            api.delete("pods", name, propagation="Background")


def mounted_root(results_path: str | None) -> str | None:
    """Where the results volume is mounted on this machine: ``results_path``, else ``$ML_JOBS_RESULTS_PATH``."""
    return results_path or os.environ.get(RESULTS_PATH_ENV) or None


def read_results(
    api: Api,
    experiment: str,
    *,
    revision: int | None = None,
    results_path: str | None = None,
    reader_image: str = READER_IMAGE,
    timeout: float = 120.0,
    sleep: Callable[[float], None] = time.sleep,
) -> ExperimentResults:
    """Collect every run's parameters and metrics of ``experiment`` (see the module doc for the two ways)."""
    from ml_jobs import layout

    record = registry.require(api, experiment)
    rev = record.require(revision)
    # Run states from the Job while it exists (which also records the sweep's end in the registry once).
    status = sweep_status(api, experiment, revision=rev.revision, record=record, explain=False)
    if status.recorded:
        record = registry.read(api, experiment) or record
        rev = record.get(rev.revision) or rev
    spec = record.spec(rev.revision) or {}
    rows = {row["index"]: row for row in record.runs(rev.revision)}
    exp_dir = layout.experiment_dir_name(experiment, rev.revision)
    indices = range(rev.runs)

    root = mounted_root(results_path)
    if root:
        if not (Path(root) / exp_dir).is_dir():
            raise ResultsError(f"{Path(root) / exp_dir}: no such directory (is the results volume mounted?)")
        runs = _results.read_results(root, exp_dir, indices)
        source = f"mounted {Path(root) / exp_dir}"
    else:
        claim = (spec.get("results") or {}).get("claim")
        if not claim:
            raise ResultsError(
                f"experiment {experiment!r} names no results claim in its spec; pass --results-path"
            )
        files, pod_name = read_with_pod(
            api, experiment, claim, exp_dir, image=reader_image, timeout=timeout, sleep=sleep
        )
        with tempfile.TemporaryDirectory(prefix="ml-jobs-results-") as tmp:
            _materialise(files, Path(tmp), exp_dir)
            runs = _results.read_results(tmp, exp_dir, indices)
        source = f"reader pod {pod_name} (claim {claim})"

    # Parameters as recorded at submit (or derived from the recorded spec) where a run left no params.json.
    params_of = _params_of(spec, rows)
    runs = [r if r.params else replace(r, params=params_of(r.index)) for r in runs]
    states = {r.index: r.state for r in status.runs if r.state != "unknown"}
    _record_metrics(api, record, rev, runs)
    from ml_jobs.spec import Objective

    objective = Objective.from_record(rev.objective)
    return ExperimentResults(experiment, rev.revision, objective, runs, source, list(rev.params), states)


def _params_of(spec: dict[str, Any], rows: dict[int, dict[str, Any]]) -> Callable[[int], dict[str, Any]]:
    if rows and all(row.get("params") is not None for row in rows.values()):
        return lambda i: (rows.get(i) or {}).get("params") or {}
    from ml_jobs.spec import parse_spec

    return parse_spec(spec, "the registry's copy of the spec").sweep.params


def _record_metrics(
    api: Api, record: registry.Record, rev: registry.Revision, runs: list[_results.RunResult]
) -> None:
    """Store the final metrics in the registry once the sweep has ended and they are not recorded yet."""
    if rev.state not in {registry.FINISHED, registry.CANCELLED, registry.GONE}:
        return
    rows = record.runs(rev.revision)
    by_index = {r.index: r for r in runs}
    changed = False
    for row in rows:
        r = by_index.get(row["index"])
        if r is not None and r.metrics and row.get("metrics") != r.metrics:
            row["metrics"] = r.metrics
            changed = True
    if changed:
        registry.update(api, record, record.revisions, runs={rev.revision: rows})
