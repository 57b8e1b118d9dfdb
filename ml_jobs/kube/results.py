"""Read every run's ``metrics.json`` of an experiment from the results volume.

Two ways to the same files (layout: ``ml_jobs.layout``, ``<root>/<experiment>/<run>/metrics.json``):

- **mounted**: the results volume (NFS) is mounted on the workstation; the path is given (``--results-path``) or
  configured (``$ML_JOBS_RESULTS_PATH``) and the files are read directly — no API request at all;
- **reader pod**: otherwise a short-lived pod mounts the same claim read-only, prints every ``metrics.json`` with a
  header line, and is deleted as soon as its log is read (also on error or Ctrl-C). Requests: create, a GET per
  second while it starts, its log, delete — none per run. It runs the experiment's own image (as the registry
  recorded it at submit) with the spec's ``python``, preferring the nodes the runs ran on: no other image is
  pulled, so it works where nothing outside can be reached. A reader the API server refuses (quota, admission) or
  that cannot start (an image it cannot pull) is said at once, in one line, in the cluster's own words.

Run states come from the sweep's status (Job + one pod list) while the Job exists, else from the registry.

What is found is recorded as the runs' final metrics in the registry when the sweep has ended, so ``ls`` and
``results`` keep working after the Job's TTL.
"""

from __future__ import annotations

import contextlib
import copy
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
from ml_jobs.errors import ApiError, HerdError, ResultsError
from ml_jobs.kube import pending, registry
from ml_jobs.kube.status import sweep_status
from ml_jobs.results import ExperimentResults

if TYPE_CHECKING:
    from ml_jobs.kube._api import Api

RESULTS_PATH_ENV = "ML_JOBS_RESULTS_PATH"
READER_MOUNT = "/results"
READER_DEADLINE_SECONDS = 300
READER_COMPONENT = "reader"  # the reader pod's component label (the team queue policy knows the reader by more)
# Its resources: small, fixed, no GPU (the team queue policy admits a pod outside the queue only within these).
READER_RESOURCES = {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "200m", "memory": "64Mi"}}
_NODES_PREFERRED = 20  # nodes of the runs the reader prefers (their image is there already)
_HEADER = "==> "
_END = "==| files: "  # the last line: how many files were printed, so a truncated log is noticed
# The reader's whole program, run by the experiment's own interpreter in the experiment's own image (the spec's
# contract: it has ``python``, the shim needs it too), so no other image is pulled: air-gapped sites and registry
# mirrors hold it already. One header line per file, then the file on one line (metrics.json is JSON; newlines
# inside it are dropped so every file is exactly one line). Standard library only, no f-strings: any Python 3.
READER_SCRIPT = """\
import glob, os, sys
root = os.environ["RESULTS_DIR"]
try:
    os.chdir(root)
except OSError:
    sys.stderr.write("no directory %s on the results volume\\n" % root)
    sys.exit(3)
n = 0
for name in ("metrics.json", "params.json"):
    for path in sorted(glob.glob("*/" + name)):
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read().replace("\\n", "")
        sys.stdout.write("%s%s\\n%s\\n" % (__HEADER__, path, text))
        n += 1
sys.stdout.write("%s%d\\n" % (__END__, n))
""".replace("__HEADER__", repr(_HEADER)).replace("__END__", repr(_END))
# Container states in which the reader will not start by waiting longer: said at once, in the kubelet's words.
_CANNOT_START = {
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
}


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


def reader_command(python: str = "python3") -> list[str]:
    """The reader's command: ``python`` isolated from the image's environment variables and user site (-I), without
    its site-packages' start-up hooks (-S), writing no bytecode (-B; the root file system is read-only)."""
    return [python, "-I", "-S", "-B", "-c", READER_SCRIPT]


def reader_pod(
    experiment: str,
    claim: str,
    experiment_dir: str,
    *,
    image: str,
    python: str = "python3",
    nodes: list[str] | None = None,
) -> dict[str, Any]:
    """The reader pod: runs ``image``'s ``python`` on :data:`READER_SCRIPT`, which prints every run's files from
    ``claim`` mounted read-only. ``nodes``: where the runs ran, preferred (the image is there already)."""
    name = f"{experiment[:40]}-results-{uuid.uuid4().hex[:6]}"
    spec: dict[str, Any] = {
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
                "name": READER_COMPONENT,
                "image": image,
                "command": reader_command(python),
                "env": [{"name": "RESULTS_DIR", "value": posixpath.join(READER_MOUNT, experiment_dir)}],
                "volumeMounts": [{"name": "results", "mountPath": READER_MOUNT, "readOnly": True}],
                "resources": copy.deepcopy(READER_RESOURCES),
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
            }
        ],
        "volumes": [{"name": "results", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}}],
    }
    if nodes:
        # One preference per node: the API server allows a single value in a metadata.name field selector.
        spec["affinity"] = {
            "nodeAffinity": {
                "preferredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "weight": 100,
                        "preference": {
                            "matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]
                        },
                    }
                    for node in sorted(set(nodes))[:_NODES_PREFERRED]
                ]
            }
        }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {L.EXPERIMENT: experiment, L.COMPONENT: READER_COMPONENT, L.MANAGED_BY: L.MANAGER},
        },
        "spec": spec,
    }


def cannot_start(pod: dict[str, Any]) -> str | None:
    """Why ``pod`` will not start however long one waits, in the cluster's own words; None while it may.

    The kubelet's waiting reason and message (an image it cannot pull, a container it cannot create), or the
    pod's own reason and message where it failed before its container ran (evicted, refused by the kubelet).
    """
    status = pod.get("status") or {}
    for cs in status.get("initContainerStatuses") or [], status.get("containerStatuses") or []:
        for c in cs:
            waiting = (c.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in _CANNOT_START:
                return _words(waiting.get("reason"), waiting.get("message"))
    ran = any(
        "terminated" in (c.get("state") or {}) or "running" in (c.get("state") or {})
        for c in status.get("containerStatuses") or []
    )
    if status.get("phase") == "Failed" and not ran:
        return _words(status.get("reason") or "Failed", status.get("message"))
    return None


def _words(reason: str | None, message: str | None) -> str:
    """``reason: message`` on one line."""
    text = " ".join(f"{reason or ''}: {message or ''}".split())
    return text.strip(": ").strip()


def read_with_pod(
    api: Api,
    experiment: str,
    claim: str,
    experiment_dir: str,
    *,
    image: str,
    python: str = "python3",
    nodes: list[str] | None = None,
    timeout: float = 120.0,
    poll: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[dict[str, str], str]:
    """Run the reader pod, read its log, delete it (always). Returns ({relative path: text}, pod name).

    Raises:
        ResultsError: the API server refused the pod (quota, admission policy, Pod Security), it cannot start
            (an image it cannot pull, ...) — both at once, in the cluster's words —, it failed, or it did not
            finish within ``timeout`` seconds.
    """
    pod = reader_pod(experiment, claim, experiment_dir, image=image, python=python, nodes=nodes)
    name = pod["metadata"]["name"]
    try:
        api.create("pods", pod)
    except ApiError as e:
        if e.status is None or e.status >= 500:
            raise  # the API server failed or was not reached: not a refusal of this pod
        raise ResultsError(f"reader pod {name} refused: {_words(None, e.reason) or e}") from e
    try:
        waited = 0.0
        while True:
            current = api.get("pods", name)
            phase = (current.get("status") or {}).get("phase")
            if (why := cannot_start(current)) is not None:
                raise ResultsError(f"reader pod {name} (image {image}) cannot start: {why}")
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
    reader_image: str | None = None,
    timeout: float = 120.0,
    sleep: Callable[[float], None] = time.sleep,
) -> ExperimentResults:
    """Collect every run's parameters and metrics of ``experiment`` (see the module doc for the two ways).

    ``reader_image``: the reader pod's image; default, the revision's own image (as the registry recorded it at
    submit), run with the spec's ``python``.
    """
    from ml_jobs import layout

    record = registry.require(api, experiment)
    rev = record.require(revision)
    # Run states from the Job while it exists (which also records the sweep's end in the registry once).
    status = sweep_status(api, experiment, revision=rev.revision, record=record, explain=False)
    if status.recorded:
        record = registry.read(api, experiment) or record
        rev = record.get(rev.revision) or rev
    spec = record.spec(rev.revision) or {}
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
            api,
            experiment,
            claim,
            exp_dir,
            image=reader_image or rev.image,
            python=spec.get("python") or "python3",
            nodes=[r.node for r in status.runs if r.node],
            timeout=timeout,
            sleep=sleep,
        )
        with tempfile.TemporaryDirectory(prefix="ml-jobs-results-") as tmp:
            _materialise(files, Path(tmp), exp_dir)
            runs = _results.read_results(tmp, exp_dir, indices)
        source = f"reader pod {pod_name} (claim {claim})"

    # Parameters from the record (derived from its spec) where a run left no params.json.
    params_of = record.params_of(rev.revision)
    runs = [r if r.params else replace(r, params=params_of(r.index)) for r in runs]
    states = {r.index: r.state for r in status.runs if r.state != "unknown"}
    _record_metrics(api, record, rev, runs)
    from ml_jobs.spec import Objective

    objective = Objective.from_record(rev.objective)
    return ExperimentResults(experiment, rev.revision, objective, runs, source, list(rev.params), states)


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
