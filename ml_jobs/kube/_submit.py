"""Submit a sweep: its registry entry, its sweep ConfigMap and its Indexed Job — all of them, or none.

Order, and why:

0. Check everything the spec alone decides — render its objects, which refuses e.g. a name too long for the pods'
   host names — before any request, so bad input is refused at once, also with the cluster unreachable.
1. Read the registry (one GET) and decide (:func:`decide`, plain data, no request): the same spec as a submitted
   revision means the sweep exists: say so and create nothing. A changed spec under the name is refused unless a
   new revision is asked for. Only when something will be created is the server asked who the user is.
2. Write the revision into the registry as ``submitting`` — the intent, recorded first, so that a submit killed
   outright (``kill -9``, a lost laptop) is recognised and *resumed* by the next identical submit.
3. Create the sweep ConfigMap, then the Job (last: nothing runs before everything it needs exists).
4. Make the ConfigMap a dependent of the Job (``ownerReferences``), so the Job's TTL removes both together.
5. Mark the revision ``submitted``.

A failure or Ctrl-C in steps 2 to 5 rolls back what *this call* created, in reverse, with further Ctrl-C held off
until the rollback is done. Transient errors (5xx, timeouts) are retried by the API layer; since names are
deterministic, a create whose first answer was lost meets 409 on retry, and the object is recognised as this
call's own by its ``herd.dev/submission`` annotation — never duplicated.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import signal
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal

from ml_jobs import _labels as L
from ml_jobs.errors import ConflictError, ExperimentExistsError, HerdError
from ml_jobs.kube import queues, registry
from ml_jobs.render import login_name

if TYPE_CHECKING:
    from ml_jobs.kube._api import Api


@dataclass
class SubmitResult:
    """What ``submit`` did."""

    experiment: str
    namespace: str
    revision: int
    job: str
    runs: int
    created: bool  # False: an identical sweep existed and nothing was created
    resumed: bool = False  # a previously interrupted submit of this spec was completed
    message: str = ""
    objects: list[str] = field(default_factory=list)  # "kind/name" created by this call


@dataclass
class _Made:
    """What this call created (or may have: a create whose answer never came), for rollback."""

    submission: str
    revision: int
    owns_entry: bool  # this call adds the registry entry (False when resuming an interrupted submit)
    objects: list[tuple[str, str]] = field(default_factory=list)  # (resource, name), creation order
    in_flight: tuple[str, str] | None = None  # a create sent, its answer not (yet) received


@contextlib.contextmanager
def _ctrl_c_deferred() -> Iterator[list[int]]:
    """Hold off SIGINT while a rollback runs; a Ctrl-C meanwhile is re-raised afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    caught: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield caught
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        raise KeyboardInterrupt


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _create_or_adopt(
    api: Api, resource: str, body: dict[str, Any], submission: str
) -> tuple[dict[str, Any], bool]:
    """Create ``body``; on 409 decide whether what exists is ours. Returns (object, created by this call)."""
    name = body["metadata"]["name"]
    try:
        return api.create(resource, body), True
    except ConflictError:
        existing = api.get(resource, name)
    meta = existing.get("metadata") or {}
    if (meta.get("annotations") or {}).get(L.SUBMISSION) == submission:
        return existing, True  # our own create went through; its answer was lost and the retry met 409
    want = body["metadata"]["labels"].get(L.SPEC_HASH)
    if (meta.get("labels") or {}).get(L.SPEC_HASH) == want:
        return existing, False  # left by an interrupted submit of the same spec: adopt it
    raise ConflictError(
        f"conflict: {resource.rstrip('s')} {name!r} already exists in namespace {api.namespace!r} and was not "
        f"made from this spec (spec hash {(meta.get('labels') or {}).get(L.SPEC_HASH)!r}, this one {want!r}); "
        "delete it or rename the experiment",
        status=409,
        verb="create",
        resource=resource,
        namespace=api.namespace,
    )


def submitter(api: Api) -> str:
    """Who submits: the user the API server authenticates (a SelfSubjectReview), else the local login name.

    The server's name is the one RBAC and audit logs know (``alice@example.com``, ``oidc:alice``); the login name
    is only a fallback for servers that cannot say (before Kubernetes 1.28, or a policy forbidding the review).
    The objects' ``herd.dev/owner`` label is it, sanitised to a label value by the renderer.
    """
    return api.user_name() or login_name()


def _spec_doc(exp: Any) -> dict[str, Any]:
    return exp.to_dict()


Action = Literal["exists", "create", "resume"]
EXISTS: Final = "exists"
CREATE: Final = "create"
RESUME: Final = "resume"


@dataclass(frozen=True)
class Decision:
    """What a submit does, decided from the spec and its registry entry alone.

    Attributes:
        action: ``exists`` (a revision with this spec was submitted: create nothing), ``create`` (a new
            revision), or ``resume`` (finish the interrupted submit of this very spec).
        revision: the revision concerned.
        submission: the id this submit stamps on what it creates (a resumed submit keeps the interrupted one's).
        existing: the registry's revision for ``exists`` and ``resume``.
    """

    action: Action
    revision: int
    submission: str
    existing: registry.Revision | None = None


def decide(
    record: registry.Record | None,
    *,
    experiment: str,
    namespace: str,
    spec_hash: str,
    new_revision: bool = False,
    new_submission: str | None = None,
) -> Decision:
    """Decide what submitting a spec with ``spec_hash`` under ``experiment`` does, given its registry ``record``.

    Raises:
        ExperimentExistsError: the name exists with a different spec and ``new_revision`` is not set.
        HerdError: a new revision is asked for while the latest one's submit was interrupted.
    """
    submission = new_submission or uuid.uuid4().hex[:16]
    latest = record.latest() if record is not None else None
    if record is None or latest is None:
        return Decision(CREATE, 1, submission)
    if new_revision:
        if latest.state == registry.SUBMITTING:
            raise HerdError(
                f"revision {latest.revision} of {experiment!r} was interrupted while being submitted; submit its "
                f"spec again to finish it, or `ml-jobs cancel {experiment}` to clear it, before adding a revision"
            )
        return Decision(CREATE, latest.revision + 1, submission)
    same = max((r for r in record.revisions if r.spec_hash == spec_hash), key=lambda r: r.revision, default=None)
    if same is not None and same.state != registry.SUBMITTING:
        return Decision(EXISTS, same.revision, same.submission, existing=same)
    if latest.spec_hash == spec_hash:
        return Decision(RESUME, latest.revision, latest.submission, existing=latest)
    raise ExperimentExistsError(
        f"experiment {experiment!r} already exists in namespace {namespace!r} with a different spec "
        f"(revision {latest.revision}, spec hash {latest.spec_hash}, this spec {spec_hash}); "
        f"rename it, or pass --new-revision to run it as revision {latest.revision + 1}",
        experiment=experiment,
        namespace=namespace,
        revision=latest.revision,
    )


def check(exp: Any, *, owner: str | None = None) -> None:
    """Refuse, without a request, what the spec alone makes the API server refuse: revision 1's objects.

    Raises:
        ManifestError: an object would be refused (e.g. a name too long for the pods' host names).
    """
    from ml_jobs.render import render

    render(exp, owner=owner, revision=1)


def submit(api: Api, exp: Any, *, new_revision: bool = False, owner: str | None = None) -> SubmitResult:
    """Submit experiment ``exp`` (an ``ml_jobs.spec.Experiment``) to ``api.namespace``.

    Args:
        api: the namespaced API handle.
        exp: the experiment.
        new_revision: submit a changed (or the same) spec under an existing name as the next revision.
        owner: who submits (default: :func:`submitter`, asked only when something will be created); recorded
            and put on the objects.

    Raises:
        ManifestError: an object would be refused by the API server (before any request for revision 1).
        ExperimentExistsError: the name exists with a different spec and ``new_revision`` is not set.
        ApiError: the API refused or failed; anything this call created has been removed again.
    """
    from ml_jobs.render import render

    # What the spec alone decides is checked before the first request; a later revision's longer names are
    # checked once the registry has said which revision it is, still before anything is written.
    check(exp, owner=owner)
    spec_hash = exp.spec_hash()
    record = registry.read(api, exp.name)
    decision = decide(
        record, experiment=exp.name, namespace=api.namespace, spec_hash=spec_hash, new_revision=new_revision
    )
    if decision.action == EXISTS:
        same = decision.existing
        assert same is not None
        return SubmitResult(
            exp.name,
            api.namespace,
            same.revision,
            same.job,
            same.runs,
            created=False,
            message=(
                f"experiment {exp.name} revision {same.revision} (Job {same.job}) was already submitted "
                f"with this spec at {same.submitted_at} by {same.submitted_by}; nothing created"
            ),
        )

    owner = owner or submitter(api)
    # Only when something will be created: the team queue (one list; none where Kueue does not run).
    queue = queues.find_queue(api, exp.queue)
    revision, submission, resume = decision.revision, decision.submission, decision.action == RESUME
    rendered = render(exp, namespace=api.namespace, owner=owner, revision=revision, queue=queue)
    # The renderer's objects are plain data of our own: stamp them in place, so a retried create knows its own.
    for obj in rendered.objects:
        obj["metadata"]["annotations"][L.SUBMISSION] = submission
    config_map, job = rendered.config_map, rendered.job
    cm_name, job_name = config_map["metadata"]["name"], rendered.job_name

    made = _Made(submission=submission, revision=revision, owns_entry=not resume)
    try:
        if not resume:
            record, _ = _record_intent(
                api,
                exp,
                record=record,
                revision=revision,
                job_name=job_name,
                config_map_name=cm_name,
                spec_hash=spec_hash,
                owner=owner,
                submission=submission,
            )
        assert record is not None

        made.in_flight = ("configmaps", cm_name)
        _, cm_created = _create_or_adopt(api, "configmaps", config_map, submission)
        made.in_flight = None
        if cm_created:
            made.objects.append(("configmaps", cm_name))
        made.in_flight = ("jobs", job_name)
        job_obj, job_created = _create_or_adopt(api, "jobs", job, submission)
        made.in_flight = None
        if job_created:
            made.objects.append(("jobs", job_name))
        job_meta = job_obj["metadata"]
        owner_ref = {"apiVersion": "batch/v1", "kind": "Job", "name": job_name, "uid": job_meta["uid"]}
        api.patch("configmaps", cm_name, {"metadata": {"ownerReferences": [owner_ref]}})

        _mark_submitted(api, record, revision, job_meta["uid"])
    except BaseException as e:
        _rollback(api, exp.name, made, e)
        raise

    verb = "resumed an interrupted submit and created" if resume else "created"
    runs = exp.sweep.size()
    return SubmitResult(
        exp.name,
        api.namespace,
        revision,
        job_name,
        runs,
        created=True,
        resumed=resume,
        message=f"{verb} experiment {exp.name} revision {revision}: Job {job_name} with {runs} runs",
        objects=[f"{res}/{name}" for res, name in made.objects],
    )


def _record_intent(
    api: Api,
    exp: Any,
    *,
    record: registry.Record | None,
    revision: int,
    job_name: str,
    config_map_name: str,
    spec_hash: str,
    owner: str,
    submission: str,
) -> tuple[registry.Record, bool]:
    """Write the new revision into the registry as ``submitting``. Returns (record, registry created)."""
    entry = registry.Revision(
        revision=revision,
        job=job_name,
        spec_hash=spec_hash,
        state=registry.SUBMITTING,
        runs=exp.sweep.size(),
        image=exp.image,
        objective=exp.objective.to_record() if exp.objective else {},
        submitted_at=_now(),
        submitted_by=owner,
        submission=submission,
        config_map=config_map_name,
        params=list(exp.sweep.names()),
    )
    # The definition, not the runs: their parameters are derived from it where they are read (O(1) in runs).
    try:
        if record is None:
            return registry.create(api, exp.name, entry, _spec_doc(exp)), True
        updated = registry.update(api, record, [*record.revisions, entry], specs={revision: _spec_doc(exp)})
        return updated, False
    except ConflictError:
        # Either our own write went through and only its answer was lost (a retry then meets 409), or another
        # client wrote meanwhile. Our submission id tells which.
        current = registry.read(api, exp.name)
        mine = current.get(revision) if current is not None else None
        if current is not None and mine is not None and mine.submission == submission:
            return current, record is None
        raise


def _mark_submitted(api: Api, record: registry.Record, revision: int, job_uid: str) -> None:
    """submitting -> submitted (a lost answer is recognised on retry, as above)."""
    entry = record.get(revision)
    assert entry is not None
    done = registry.Revision.from_json({**entry.__dict__, "state": registry.SUBMITTED, "job_uid": job_uid})
    try:
        registry.update(api, record, [done if r.revision == revision else r for r in record.revisions])
    except ConflictError:
        current = registry.read(api, record.experiment)
        now = current.get(revision) if current is not None else None
        if now is None or now.submission != entry.submission or now.state != registry.SUBMITTED:
            raise


def _rollback(api: Api, experiment: str, made: _Made, cause: BaseException) -> None:
    """Remove what this submit created, newest first; note on ``cause`` anything that could not be removed.

    A create interrupted before its answer (Ctrl-C, timeout) may still have happened on the server: such an
    object is looked up and removed if it carries this call's submission id. Likewise the registry entry.
    """
    left: list[str] = []
    with _ctrl_c_deferred():
        try:
            if made.in_flight is not None:
                resource, name = made.in_flight
                obj = api.get_or_none(resource, name)
                ours = ((obj or {}).get("metadata") or {}).get("annotations", {}).get(L.SUBMISSION)
                if ours == made.submission:
                    made.objects.append(made.in_flight)
        except HerdError as e:
            left.append(f"{made.in_flight[0].rstrip('s')} {made.in_flight[1]} ({e})")  # type: ignore[index]
        for resource, name in reversed(made.objects):
            try:
                api.delete(resource, name, propagation="Background")
            except HerdError as e:
                left.append(f"{resource.rstrip('s')} {name} ({e})")
        try:
            record = registry.read(api, experiment) if made.owns_entry else None
            entry = record.get(made.revision) if record is not None else None
            if record is not None and entry is not None and entry.submission == made.submission:
                if len(record.revisions) == 1:
                    registry.delete(api, experiment)
                else:
                    rev = made.revision
                    rest = [r for r in record.revisions if r.revision != rev]
                    registry.update(api, record, rest, specs={rev: None}, runs={rev: None})
        except HerdError as e:
            left.append(f"registry entry ({e})")
    if left and isinstance(cause, HerdError):
        cause.args = (
            f"{cause}; could not roll back: {', '.join(left)} — submit again to finish, "
            f"or `ml-jobs cancel {experiment}` to clear",
        )
