"""The Pulumi program's Kubernetes objects through the real API server (the local real cluster, v1.36.3): its
defaulting, validation and admission, not only a schema's. And the team storage policies it creates, enforced by
the real server's ValidatingAdmissionPolicy admission, as alice and as admin."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from herd_local.cluster import ALICE_TEAM, LocalCluster
from herd_local.objects import plan_objects
from ml_jobs.kube.results import reader_pod
from ml_jobs.queueing import QUEUE_LABEL, queue_name
from ml_jobs.render import render
from ml_jobs.spec import Experiment
from tests.infra.helpers import ALL_STACKS, stack_values

pytestmark = pytest.mark.real_cluster


def kubectl(
    cluster: LocalCluster, kubeconfig: Path, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(cluster.bin / "kubectl"), f"--kubeconfig={kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
    )


def as_list(objects: list[dict[str, Any]]) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": objects})


@pytest.mark.parametrize("stack", ALL_STACKS, ids=lambda p: p.stem)
def test_every_object_of_every_stack_passes_the_real_api_server(
    real_control_plane: LocalCluster, stack: Path
) -> None:
    # GIVEN the objects the program declares for the stack (namespaces created for real: a dry run cannot hold
    # objects in a namespace that does not exist)
    objects = plan_objects(stack_values(stack))
    real_control_plane.apply([o for o in objects if o["kind"] == "Namespace"])

    # WHEN the real API server takes them all (server-side apply, dry run)
    done = kubectl(
        real_control_plane, real_control_plane.admin_kubeconfig,
        "apply", "--server-side", "--dry-run=server", "--force-conflicts", "--field-manager=herd-test",
        "-o", "json", "-f", "-", stdin=as_list(objects),
    )  # fmt: skip

    # THEN every one is accepted, defaulted as the server defaults it
    assert done.returncode == 0, done.stderr
    accepted = json.loads(done.stdout)["items"]
    assert [(o["kind"], o["metadata"]["name"]) for o in accepted] == [
        (o["kind"], o["metadata"]["name"]) for o in objects
    ]
    quota = next((o for o in accepted if o["kind"] == "LimitRange"), None)
    if quota is not None:  # the server filled in what the program left to it
        assert quota["metadata"]["uid"] and quota["metadata"]["creationTimestamp"]


def test_the_server_refuses_what_the_check_above_would_let_through(real_control_plane: LocalCluster) -> None:
    """The check can fail: a quota with a malformed quantity is refused by the real server."""
    bad = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "bad", "namespace": ALICE_TEAM},
        "spec": {"hard": {"requests.cpu": "lots"}},
    }
    done = kubectl(
        real_control_plane, real_control_plane.admin_kubeconfig, "create", "--dry-run=server", "-f", "-",
        stdin=json.dumps(bad),
    )  # fmt: skip
    assert done.returncode != 0 and "quantities must match the regular expression" in done.stderr


# ------------------------------------------------------------------------------------------------ team policies
def _experiment(**overrides: Any) -> Experiment:
    spec: dict[str, Any] = {
        "name": "policy-check",
        "image": "registry.example.com/vision/train:1",
        "command": ["python", "train.py"],
        "resources": {"cpu": "1", "memory": "1Gi"},
        "sweep": {"grid": {"lr": [0.1]}},
    }
    return Experiment(**{**spec, **overrides})


def _nfs_volume() -> dict[str, Any]:
    return {"name": "nas", "nfs": {"server": "10.20.8.5", "path": "/export/herd"}}


def _attack_pod() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "peek", "namespace": ALICE_TEAM},
        "spec": {
            "containers": [
                {
                    "name": "c",
                    "image": "registry.example.com/tools:1",
                    "volumeMounts": [{"name": "nas", "mountPath": "/nas"}],
                }
            ],
            "volumes": [_nfs_volume()],
        },
    }


def _attack_job() -> dict[str, Any]:
    pod = _attack_pod()
    pod["spec"]["restartPolicy"] = "Never"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        # In the team's queue, so that only the storage policy has a reason to refuse it.
        "metadata": {"name": "peek", "namespace": ALICE_TEAM, "labels": {QUEUE_LABEL: queue_name(ALICE_TEAM)}},
        "spec": {"template": {"spec": pod["spec"]}},
    }


def _claim(name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": ALICE_TEAM, "annotations": annotations or {}},
        "spec": {
            "accessModes": ["ReadWriteMany"],
            "storageClassName": "herd-nfs",
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }


@pytest.mark.parametrize(
    ("who", "make", "message"),
    [
        # A bare pod is refused by the team queue policy as well; the server names the first policy that refuses.
        ("alice", _attack_pod, "herd: "),
        ("alice", _attack_job, "herd: Job volume(s) nas mount NFS directly"),
        # alice may not create claims at all (RBAC); the policy holds even for one who may.
        ("admin", lambda: _claim("escape", {"nfs.io/storage-path": "../nlp/results"}), "herd: claim escape"),
    ],
    ids=["inline-nfs-pod", "inline-nfs-job", "traversal-claim"],
)
def test_the_team_policies_refuse_what_reaches_another_teams_results(
    real_control_plane: LocalCluster, who: str, make: Any, message: str
) -> None:
    kubeconfig = real_control_plane.alice_kubeconfig if who == "alice" else real_control_plane.admin_kubeconfig
    done = kubectl(
        real_control_plane, kubeconfig, "create", "--dry-run=server", "-f", "-", stdin=json.dumps(make())
    )
    assert done.returncode != 0
    assert "denied request" in done.stderr and message in done.stderr, done.stderr


def test_what_ml_jobs_creates_and_the_teams_own_claim_pass_the_policies(real_control_plane: LocalCluster) -> None:
    # GIVEN ml-jobs' own objects for a sweep with results on the team's claim, and its results reader pod
    objects = render(_experiment(), namespace=ALICE_TEAM, owner="alice", revision=1, queue=ALICE_TEAM)
    reader = reader_pod("policy-check", "herd-results", "/results/policy-check", image="registry.example.com/x:1")
    reader["metadata"]["namespace"] = ALICE_TEAM
    for obj in (objects.config_map, objects.job, reader):
        done = kubectl(
            real_control_plane, real_control_plane.alice_kubeconfig, "create", "--dry-run=server", "-f", "-",
            stdin=json.dumps(obj),
        )  # fmt: skip
        assert done.returncode == 0, f"{obj['kind']}: {done.stderr}"
    # AND the team's own claim, as the program creates it
    own = next(
        o
        for o in plan_objects()
        if o["kind"] == "PersistentVolumeClaim" and o["metadata"]["namespace"] == ALICE_TEAM
    )
    done = kubectl(
        real_control_plane, real_control_plane.admin_kubeconfig, "apply", "--server-side", "--dry-run=server",
        "--force-conflicts", "-f", "-", stdin=json.dumps(own),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
