"""The run registry: what ran with which parameters, kept in Kubernetes so it outlives the Job.

One ConfigMap per experiment, ``<experiment>.registry``, labelled ``herd.dev/experiment=<name>`` and
``herd.dev/component=registry``, and *not* owned by the Job: the Job's ``ttlSecondsAfterFinished`` removes the
Job, its pods and its sweep ConfigMap, and the registry stays. It holds, for every revision submitted under the
name:

``data["record.json"]``
    ``{"format": 1, "experiment": name, "revisions": [Revision, ...]}`` (see :class:`Revision`).
``data["spec-r<N>.json"]``
    the normalised spec of revision N, as submitted: the sweep *definition*, from which every run's parameters
    are derived when they are read (:meth:`Record.params_of`), as each run's pod derives its own. Submit writes
    this and the revision, nothing per run: its cost and the registry's size do not grow with the run count.
``binaryData["runs-r<N>.json.gz"]``
    the runs of revision N, written when there is something per run to record: when the sweep is seen to end
    (per-run state, node, exit code, attempts, final metrics) or is cancelled. Gzip-compressed JSON, one array
    per column so 10,000 runs stay far below the 1 MiB object limit: ``{"columns": {"index": [0, 1, ...],
    "state": ["succeeded", ...], "node": [...], "exitCode": [...], "attempts": [...], "metrics": [{"accuracy":
    0.97}, ...]}, "omitted": []}``. Records written by earlier versions may hold a ``params`` column too (read
    as before). Too big (around 100,000 runs), metrics are left out (the results volume keeps them); ``omitted``
    says so.

Every update is a JSON merge patch carrying the ``resourceVersion`` it was computed from, so two clients racing
on the same experiment get a 409 instead of overwriting each other.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ml_jobs import _labels as L
from ml_jobs.errors import HerdError, UnknownExperimentError

if TYPE_CHECKING:
    from ml_jobs.kube._api import Api

FORMAT = 1
RECORD_KEY = "record.json"
COLUMNS = ["index", "params", "state", "node", "exitCode", "attempts", "metrics"]
# ConfigMaps are limited to 1 MiB in all; keep the runs table well below, leaving room for specs and revisions.
MAX_RUNS_BYTES = 600 * 1024

# Revision states.
SUBMITTING = "submitting"  # the registry entry exists; the sweep's objects may not all exist yet
SUBMITTED = "submitted"  # ConfigMap and Job created; runs in progress
FINISHED = "finished"  # the Job ended (complete or failed); per-run results recorded
CANCELLED = "cancelled"  # `ml-jobs cancel`; runs' state at that moment recorded
GONE = "gone"  # the Job disappeared before anyone recorded how it ended


def registry_name(experiment: str) -> str:
    """The registry ConfigMap's name (dotted, so it can never collide with a Job's or sweep ConfigMap's)."""
    return f"{experiment}.registry"


def spec_key(revision: int) -> str:
    return f"spec-r{revision}.json"


def runs_key(revision: int) -> str:
    return f"runs-r{revision}.json.gz"


@dataclass
class Revision:
    """One submission of the experiment (a Job)."""

    revision: int
    job: str
    spec_hash: str
    state: str
    runs: int
    image: str
    objective: dict[str, str]
    submitted_at: str
    submitted_by: str
    submission: str
    params: list[str] = field(default_factory=list)
    job_uid: str | None = None
    config_map: str | None = None
    finished_at: str | None = None
    outcome: str | None = None  # "complete", "failed: BackoffLimitExceeded", "cancelled", ...
    counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Revision:
        names = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in doc.items() if k in names})


@dataclass
class Record:
    """The registry ConfigMap, decoded."""

    experiment: str
    revisions: list[Revision]
    resource_version: str | None
    data: dict[str, str]
    binary: dict[str, str]

    def latest(self) -> Revision | None:
        return max(self.revisions, key=lambda r: r.revision) if self.revisions else None

    def get(self, revision: int | None) -> Revision | None:
        if revision is None:
            return self.latest()
        return next((r for r in self.revisions if r.revision == revision), None)

    def require(self, revision: int | None) -> Revision:
        """Like :meth:`get`, but an unknown revision raises ``UnknownExperimentError`` naming the known ones."""
        rev = self.get(revision)
        if rev is None:
            known = ", ".join(str(r.revision) for r in self.revisions)
            raise UnknownExperimentError(
                f"experiment {self.experiment!r} has no revision {revision} (revisions: {known})"
            )
        return rev

    def spec(self, revision: int) -> dict[str, Any] | None:
        text = self.data.get(spec_key(revision))
        return json.loads(text) if text else None

    def params_of(self, revision: int) -> Callable[[int], dict[str, Any]]:
        """Run index -> its parameters: from the runs table where an older record stored them, else derived from
        the recorded spec (the same derivation each run's pod makes). Parses the spec only when called."""
        rows = {row["index"]: row for row in self.runs(revision)}
        if rows and all(row.get("params") is not None for row in rows.values()):
            return lambda i: (rows.get(i) or {}).get("params") or {}
        from ml_jobs.spec import parse_spec

        return parse_spec(self.spec(revision) or {}, "the registry's copy of the spec").sweep.params

    def runs(self, revision: int) -> list[dict[str, Any]]:
        """The recorded runs of ``revision`` as dicts keyed by :data:`COLUMNS` (empty if none recorded yet; a
        column not stored, ``params`` in today's records, is None: :meth:`params_of` derives them)."""
        blob = self.binary.get(runs_key(revision))
        if not blob:
            return []
        doc = json.loads(gzip.decompress(base64.b64decode(blob)))
        columns = doc["columns"]
        n = len(columns["index"])
        return [{c: (columns[c][i] if c in columns else None) for c in COLUMNS} for i in range(n)]

    def document(self) -> str:
        return json.dumps(
            {"format": FORMAT, "experiment": self.experiment, "revisions": [asdict(r) for r in self.revisions]},
            sort_keys=True,
            separators=(",", ":"),
        )


class RunsTableTooLarge(HerdError):
    """The runs table does not fit in the registry even without what can be found elsewhere."""


# Dropped when the table is too big: parameters (derivable from the spec; stored only by older records), then
# metrics (they stay on the results volume). State, node, exit code and attempts are what nothing else keeps.
_DROPPABLE = ("params", "metrics")


def encode_runs(rows: list[dict[str, Any]]) -> str:
    """Encode run rows for ``binaryData``, column by column (repeated states and node names compress to little).

    Raises:
        RunsTableTooLarge: still above :data:`MAX_RUNS_BYTES` after dropping :data:`_DROPPABLE` columns.
    """
    columns = {c: [row.get(c) for row in rows] for c in COLUMNS}
    if all(p is None for p in columns["params"]):
        del columns["params"]  # derived from the spec when read: nothing to store
    blob = _pack({"columns": columns, "omitted": []})
    omitted: list[str] = []
    for drop in _DROPPABLE:
        if len(blob) <= MAX_RUNS_BYTES:
            break
        if drop not in columns:
            continue
        columns.pop(drop)
        omitted.append(drop)
        blob = _pack({"columns": columns, "omitted": omitted})
    if len(blob) > MAX_RUNS_BYTES:
        raise RunsTableTooLarge(
            f"the table of {len(rows)} runs is {len(blob) // 1024} KiB even compressed; too large for the registry"
        )
    return blob


def _pack(doc: dict[str, Any]) -> str:
    raw = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    return base64.b64encode(gzip.compress(raw, mtime=0)).decode("ascii")


def decode(obj: dict[str, Any]) -> Record:
    """Decode a registry ConfigMap (as the API returned it)."""
    meta = obj.get("metadata") or {}
    data = obj.get("data") or {}
    doc = json.loads(data.get(RECORD_KEY) or "{}")
    if doc and doc.get("format") != FORMAT:
        raise HerdError(
            f"registry {meta.get('name')}: format {doc.get('format')!r}; this ml-jobs reads format {FORMAT}"
        )
    experiment = doc.get("experiment") or (meta.get("labels") or {}).get(L.EXPERIMENT, "")
    return Record(
        experiment=experiment,
        revisions=[Revision.from_json(r) for r in doc.get("revisions", [])],
        resource_version=meta.get("resourceVersion"),
        data=dict(data),
        binary=dict(obj.get("binaryData") or {}),
    )


def read(api: Api, experiment: str) -> Record | None:
    """The experiment's record, or ``None`` if it was never submitted here (one request)."""
    obj = api.get_or_none("configmaps", registry_name(experiment))
    return decode(obj) if obj is not None else None


def require(api: Api, experiment: str) -> Record:
    """Like :func:`read`, but a missing experiment is an :class:`UnknownExperimentError` naming the namespace."""
    record = read(api, experiment)
    if record is None:
        raise UnknownExperimentError(f"no experiment {experiment!r} in namespace {api.namespace!r}")
    return record


def read_all(api: Api) -> list[Record]:
    """Every experiment's record in the namespace (one request)."""
    objs = api.list("configmaps", label_selector=f"{L.COMPONENT}=registry,{L.MANAGED_BY}={L.MANAGER}")
    return sorted((decode(o) for o in objs), key=lambda r: r.experiment)


def _labels(experiment: str, state: str) -> dict[str, str]:
    return {L.EXPERIMENT: experiment, L.COMPONENT: "registry", L.MANAGED_BY: L.MANAGER, L.STATE: state}


def create(api: Api, experiment: str, revision: Revision, spec: dict[str, Any]) -> Record:
    """Create the registry with its first revision and its spec, nothing per run (``ConflictError`` if another
    client just did)."""
    record = Record(experiment, [revision], None, {}, {})
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": registry_name(experiment), "labels": _labels(experiment, revision.state)},
        "data": {RECORD_KEY: record.document(), spec_key(revision.revision): _spec_text(spec)},
    }
    return decode(api.create("configmaps", body))


def _spec_text(spec: dict[str, Any]) -> str:
    return json.dumps(spec, sort_keys=True, indent=1)


def update(
    api: Api,
    record: Record,
    revisions: list[Revision],
    *,
    specs: dict[int, dict[str, Any] | None] | None = None,
    runs: dict[int, list[dict[str, Any]] | None] | None = None,
) -> Record:
    """Replace the revisions (and some specs / run tables; ``None`` removes one), guarded by resourceVersion."""
    new = Record(record.experiment, revisions, None, {}, {})
    latest = new.latest()
    data: dict[str, Any] = {RECORD_KEY: new.document()}
    binary: dict[str, Any] = {}
    for rev, spec in (specs or {}).items():
        data[spec_key(rev)] = _spec_text(spec) if spec is not None else None
    for rev, rows in (runs or {}).items():
        binary[runs_key(rev)] = encode_runs(rows) if rows is not None else None
    patch: dict[str, Any] = {
        "metadata": {
            "resourceVersion": record.resource_version,
            "labels": {L.STATE: latest.state if latest else None},
        },
        "data": data,
    }
    if binary:
        patch["binaryData"] = binary
    return decode(api.patch("configmaps", registry_name(record.experiment), patch))


def delete(api: Api, experiment: str) -> None:
    api.delete("configmaps", registry_name(experiment))
