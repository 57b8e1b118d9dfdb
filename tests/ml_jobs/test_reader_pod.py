"""The results reader pod (``ml_jobs.kube.results``): its program run by a real Python interpreter as the pod runs
it, and a reader that cannot start said at once, in one line, in the cluster's words.

The reader runs the experiment's own image with the spec's ``python`` (nothing else is pulled). Where a cluster is
needed to refuse or to fail a pull, the API answers come from ``ApiDouble`` — a test double named as one, holding
the server's and the kubelet's messages as they write them; the real API server admits the reader as alice in
``tests/ml_jobs/cluster/test_ops.py`` and the real kubelet runs it on the real node in ``tests/real_node``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from ml_jobs.errors import ResultsError
from ml_jobs.kube._api import map_api_exception
from ml_jobs.kube.results import (
    READER_RESOURCES,
    cannot_start,
    parse_reader_output,
    read_with_pod,
    reader_command,
    reader_pod,
)

IMAGE = "registry.example.com/herd/digits:0.1.0"


def run_reader(results_dir: Path) -> subprocess.CompletedProcess[str]:
    """The reader's command as the pod runs it (this machine's Python 3 standing in for the image's)."""
    command = reader_command(sys.executable)
    env = {"RESULTS_DIR": str(results_dir), "PATH": os.environ.get("PATH", "")}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=30, check=False)


def test_the_reader_program_prints_every_runs_files_one_line_each(tmp_path: Path) -> None:
    # GIVEN an experiment directory as the runs leave it (pretty-printed JSON, a run without params, a stray dir)
    exp = tmp_path / "digits-sweep"
    for index, metrics in [(0, {"acc": 0.5}), (1, {"acc": 0.75, "loss": 0.25}), (12, {"acc": 0.9})]:
        run = exp / f"run-{index:05d}"
        run.mkdir(parents=True)
        (run / "metrics.json").write_text(json.dumps(metrics, indent=2))
        if index != 12:
            (run / "params.json").write_text(json.dumps({"lr": index / 10}))
    (exp / "checkpoints").mkdir()
    # WHEN the reader's command runs THEN its output is every file on one line, and the count at the end
    done = run_reader(exp)
    assert done.returncode == 0, done.stderr
    files = parse_reader_output(done.stdout.splitlines())
    assert {k: json.loads(v) for k, v in files.items()} == {
        "run-00000/metrics.json": {"acc": 0.5},
        "run-00001/metrics.json": {"acc": 0.75, "loss": 0.25},
        "run-00012/metrics.json": {"acc": 0.9},
        "run-00000/params.json": {"lr": 0.0},
        "run-00001/params.json": {"lr": 0.1},
    }
    assert done.stdout.splitlines()[-1] == "==| files: 5"


def test_the_reader_program_says_when_the_directory_is_missing(tmp_path: Path) -> None:
    done = run_reader(tmp_path / "nothing")
    assert done.returncode == 3
    assert done.stderr == f"no directory {tmp_path / 'nothing'} on the results volume\n"


def test_the_reader_pod_runs_the_experiments_image_small_and_read_only() -> None:
    pod = reader_pod(
        "digits-sweep", "herd-results", "digits-sweep", image=IMAGE, python="python3", nodes=["b", "a"]
    )
    (container,) = pod["spec"]["containers"]
    assert container["image"] == IMAGE and container["command"][0] == "python3"
    assert container["resources"] == READER_RESOURCES
    assert container["volumeMounts"] == [{"name": "results", "mountPath": "/results", "readOnly": True}]
    preferred = pod["spec"]["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    # one node per term: the API server refuses a metadata.name field selector with several values
    assert [p["preference"]["matchFields"] for p in preferred] == [
        [{"key": "metadata.name", "operator": "In", "values": ["a"]}],
        [{"key": "metadata.name", "operator": "In", "values": ["b"]}],
    ]
    assert "affinity" not in reader_pod("e", "c", "e", image=IMAGE)["spec"]


PULL = (
    'failed to pull and unpack image "registry.example.com/herd/digits:0.1.0": failed to resolve reference '
    '"registry.example.com/herd/digits:0.1.0": dial tcp: lookup registry.example.com: no such host'
)


def _waiting(reason: str, message: str = "") -> dict[str, Any]:
    state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
    return {"status": {"phase": "Pending", "containerStatuses": [{"name": "reader", "state": state}]}}


@pytest.mark.parametrize(
    ("pod", "why"),
    [
        (_waiting("ErrImagePull", PULL), f"ErrImagePull: {PULL}"),
        (
            _waiting("ImagePullBackOff", 'Back-off pulling image "registry.example.com/herd/digits:0.1.0"'),
            'ImagePullBackOff: Back-off pulling image "registry.example.com/herd/digits:0.1.0"',
        ),
        (
            _waiting("CreateContainerError", 'exec: "python3": executable file not found in $PATH'),
            'CreateContainerError: exec: "python3": executable file not found in $PATH',
        ),
        (
            {
                "status": {
                    "phase": "Failed",
                    "reason": "OutOfmemory",
                    "message": "Node didn't have enough resource",
                }
            },
            "OutOfmemory: Node didn't have enough resource",
        ),
        # Still on its way: nothing to say yet.
        (_waiting("ContainerCreating"), None),
        ({"status": {"phase": "Pending"}}, None),
        ({"status": {"phase": "Running", "containerStatuses": [{"state": {"running": {}}}]}}, None),
        # Ran and failed: its log says why, not its start.
        ({"status": {"phase": "Failed", "containerStatuses": [{"state": {"terminated": {"exitCode": 3}}}]}}, None),
    ],
)
def test_what_will_not_start_by_waiting(pod: dict[str, Any], why: str | None) -> None:
    assert cannot_start(pod) == why


class ApiDouble:
    """A test double of ``ml_jobs.kube.Api`` for the reader: ``create`` refuses as ``refusal`` says (an
    ``ApiException`` mapped as the real ``Api`` maps it), ``get`` answers the pod states in turn."""

    namespace = "vision"

    def __init__(self, refusal: ApiException | None = None, states: list[dict[str, Any]] | None = None) -> None:
        self.refusal = refusal
        self.states = list(states or [])
        self.calls: list[tuple[str, str]] = []

    def create(self, resource: str, body: dict[str, Any]) -> dict[str, Any]:
        self.calls.append(("create", resource))
        if self.refusal is not None:
            raise map_api_exception(self.refusal, verb="create", resource=resource, namespace=self.namespace)
        return body

    def get(self, resource: str, name: str) -> dict[str, Any]:
        self.calls.append(("get", resource))
        return self.states.pop(0)

    def list(self, resource: str, **_: Any) -> list[dict[str, Any]]:
        self.calls.append(("list", resource))
        return []

    def delete(self, resource: str, name: str, **_: Any) -> bool:
        self.calls.append(("delete", resource))
        return True


def _refusal(status: int, message: str) -> ApiException:
    e = ApiException(status=status, reason="Forbidden" if status == 403 else "Invalid")
    e.body = json.dumps({"kind": "Status", "status": "Failure", "message": message, "code": status})
    return e


QUOTA = (
    'pods "digits-sweep-results-0a1b2c" is forbidden: exceeded quota: herd-team-quota, requested: '
    "requests.memory=32Mi, used: requests.memory=64Gi, limited: requests.memory=64Gi"
)
POLICY = (
    "pods \"digits-sweep-results-0a1b2c\" is forbidden: ValidatingAdmissionPolicy 'herd-team-queue-pods' with "
    "binding 'herd-team-queue-pods' denied request: herd: pod digits-sweep-results-0a1b2c is neither a Job's nor "
    "ml-jobs' results reader (unlike the reader in: resources;): in team namespace vision work goes through the "
    "team queue vision; submit a Job labelled kueue.x-k8s.io/queue-name=vision (ml-jobs submit does)"
)


@pytest.mark.parametrize(
    ("api", "line", "calls"),
    [
        # Refused by the API server: at once, in its words; nothing was created, so nothing is deleted.
        (ApiDouble(_refusal(403, QUOTA)), f"refused: {QUOTA}", [("create", "pods")]),
        (ApiDouble(_refusal(403, POLICY)), f"refused: {POLICY}", [("create", "pods")]),
        # Created, but its image cannot be pulled: at the first look, in the kubelet's words; then deleted.
        (
            ApiDouble(states=[_waiting("ErrImagePull", PULL)]),
            f"(image {IMAGE}) cannot start: ErrImagePull: {PULL}",
            [("create", "pods"), ("get", "pods"), ("delete", "pods")],
        ),
    ],
)
def test_a_reader_that_cannot_start_is_said_at_once_in_one_line(api: ApiDouble, line: str, calls: list) -> None:
    slept: list[float] = []
    with pytest.raises(ResultsError) as caught:
        read_with_pod(api, "digits-sweep", "herd-results", "digits-sweep", image=IMAGE, sleep=slept.append)
    message = str(caught.value)
    assert message.startswith("reader pod digits-sweep-results-") and message.endswith(line)
    assert "\n" not in message and slept == [] and api.calls == calls
