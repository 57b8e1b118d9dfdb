"""submit decides from plain data before it acts, and refuses what the spec alone decides before any request.

No API server here: the decision is a function of the registry entry, and the early refusals are shown against
an address where nothing listens — had a request been sent first, the error would be that it cannot connect.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ml_jobs.errors import ExperimentExistsError, HerdError, ManifestError, UnreachableError
from ml_jobs.kube import Api, decide, registry, submit
from ml_jobs.kube._api import map_api_exception
from ml_jobs.spec import Experiment

REPO = Path(__file__).resolve().parents[2]
NOTHING_LISTENS = "http://127.0.0.1:9"  # the discard port
LONG_NAME = "a" * 61  # a valid name, but <name>-99 is 64 characters: too long for the pods' host names


def rev(revision: int, spec_hash: str, state: str = registry.SUBMITTED) -> registry.Revision:
    return registry.Revision(
        revision=revision,
        job="exp" if revision == 1 else f"exp-r{revision}",
        spec_hash=spec_hash,
        state=state,
        runs=2,
        image="python:3.11",
        objective={},
        submitted_at="2026-01-01T00:00:00Z",
        submitted_by="alice",
        submission=f"sub-{revision}",
    )


def record(*revisions: registry.Revision) -> registry.Record:
    return registry.Record("exp", list(revisions), "1", {}, {})


def decided(rec: registry.Record | None, spec_hash: str = "aaa", **kwargs: Any) -> tuple[str, int, str]:
    d = decide(rec, experiment="exp", namespace="team-a", spec_hash=spec_hash, new_submission="new", **kwargs)
    return d.action, d.revision, d.submission


@pytest.mark.parametrize(
    ("case", "rec", "kwargs", "expected"),
    [
        ("first submit", None, {}, ("create", 1, "new")),
        ("same spec, submitted", record(rev(1, "aaa")), {}, ("exists", 1, "sub-1")),
        ("same spec as an earlier revision", record(rev(1, "aaa"), rev(2, "bbb")), {}, ("exists", 1, "sub-1")),
        ("same spec, interrupted", record(rev(1, "aaa", registry.SUBMITTING)), {}, ("resume", 1, "sub-1")),
        ("new revision asked for", record(rev(1, "bbb")), {"new_revision": True}, ("create", 2, "new")),
        ("new revision of the same spec", record(rev(1, "aaa")), {"new_revision": True}, ("create", 2, "new")),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_the_decision_is_plain_data_from_the_registry_entry(case, rec, kwargs, expected):
    assert decided(rec, **kwargs) == expected


def test_a_changed_spec_under_a_taken_name_is_refused_by_the_decision():
    with pytest.raises(ExperimentExistsError, match=r"different spec .* revision 2"):
        decided(record(rev(1, "bbb")))


def test_no_new_revision_over_an_interrupted_submit():
    with pytest.raises(HerdError, match=r"revision 1 of 'exp' was interrupted"):
        decided(record(rev(1, "bbb", registry.SUBMITTING)), new_revision=True)


def unreachable_api() -> Api:
    from kubernetes import client

    cfg = client.Configuration()
    cfg.host = NOTHING_LISTENS
    return Api(cfg, "team-a", timeout=0.5, attempts=1, sleep=lambda s: None)


def long_named() -> Experiment:
    return Experiment(
        name=LONG_NAME, image="python:3.11", command=["python"], sweep={"grid": {"x": list(range(100))}}
    )


def test_a_name_too_long_for_host_names_is_refused_before_any_request():
    # GIVEN a spec whose only problem is its pods' host names, and no API server at all
    # WHEN it is submitted THEN the name problem is the error (not "cannot connect"), at once
    with unreachable_api() as api:
        started = time.monotonic()
        with pytest.raises(ManifestError, match=r"pod host names <job>-<index> reach 64 characters"):
            submit(api, long_named(), owner="alice")
        assert time.monotonic() - started < 1.0


def test_the_cli_refuses_it_before_reading_the_kubeconfig(tmp_path):
    spec = tmp_path / "long.yaml"
    spec.write_text(
        f"name: {LONG_NAME}\nimage: python:3.11\ncommand: [python]\nsweep: {{grid: {{x: {list(range(100))}}}}}\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "ml_jobs.cli", "submit", str(spec), "--kubeconfig", str(tmp_path / "missing")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith(f"ml-jobs: error: Job/{LONG_NAME}: metadata.name: pod host names")
    assert done.stderr.count("\n") == 1


def test_who_am_i_is_not_said_to_be_in_a_namespace():
    # SelfSubjectReviews are cluster-scoped: an error about one must not name the client's namespace.
    class Refused:
        status = 500
        body = '{"kind": "Status", "message": "etcd is down"}'

    error = map_api_exception(Refused(), verb="create", resource="selfsubjectreviews", namespace="default")
    assert str(error) == "the API server failed to create selfsubjectreviews: 500 etcd is down"
    assert error.namespace is None
    with unreachable_api() as api, pytest.raises(UnreachableError) as raised:
        api.user_name()
    assert "namespace" not in str(raised.value)
    assert "to create selfsubjectreviews (after 1 attempts)" in str(raised.value)
