"""The example sweep on a real node: the pinned kubelet, containerd and runc run it in real containers.

A local real cluster of this module's own with its real node (``herd_local.real_node``: the example site's
``cpu-01``); every simulated node is cordoned, so every run lands on the real one. Alice drives it with the
``ml-jobs`` CLI as a subprocess, as an engineer would. Processes in containers train for real, write the model
and ``metrics.json`` to the results volume (a hostPath PersistentVolume, the stand-in for NFS: this kernel has no
NFS client), report metrics through their real termination message, log through the real kubelet, and are
held to their limits by real cgroups (cgroup v1 here).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from herd_local.ports import free_base
from ml_jobs import _labels as labels
from tests.conftest import built_components

pytestmark = [pytest.mark.real_cluster, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "digits-sweep.yaml"
NODE = "cpu-01"


class RealNodeCluster:
    def __init__(self, cluster: Any, work: Path) -> None:
        self.cluster = cluster
        self.work = work
        self.env = {**os.environ, "KUBECONFIG": str(cluster.alice_kubeconfig), "COLUMNS": "200"}
        self.volume = cluster.directory / "volumes" / "vision-herd-results"

    def ml_jobs(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(Path(sys.executable).parent / "ml-jobs"), *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
            check=False,
        )
        if check:
            assert done.returncode == 0, f"ml-jobs {' '.join(args)}: {done.stderr}{done.stdout}"
        return done

    def spec(self, name: str, **changes: Any) -> Path:
        """A test-sized variant of the example spec: its image, command, results and objective."""
        spec = yaml.safe_load(EXAMPLE.read_text())
        spec.update(name=name, deadline="10m", resources={"cpu": "500m", "memory": "512Mi"})
        spec.pop("sweep")
        spec.update(changes)
        path = self.work / f"{name}.yaml"
        path.write_text(yaml.safe_dump(spec))
        return path

    def pods(self, experiment: str) -> list[dict[str, Any]]:
        out = self.cluster.kubectl("get", "pods", "-n", "vision", "-l", f"{labels.EXPERIMENT}={experiment}",
                                   "-o", "json")  # fmt: skip
        return json.loads(out)["items"]

    def wait(self, experiment: str, done: Any, timeout: float = 240) -> str:
        """``ml-jobs status`` until ``done(text)``; the last text."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.ml_jobs("status", experiment, check=False).stdout
            if done(text):
                return text
            assert time.monotonic() < deadline, f"status of {experiment} after {timeout:.0f} s:\n{text}"
            time.sleep(1)


@pytest.fixture(scope="module")
def node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNodeCluster]:
    from herd_local import images
    from herd_local.cluster import LocalCluster
    from herd_local.real_node import unavailable

    bin_dir = built_components("the real node")
    if reason := unavailable(bin_dir):
        pytest.skip(f"this machine cannot run a real node: {reason}")
    if missing := [i.reference for i in images.images() if not i.built]:
        if os.environ.get("CI"):
            pytest.fail(f"CI must build the images first (scripts/test.sh does): {', '.join(missing)}")
        pytest.skip(f"images not built (scripts/images.sh): {', '.join(missing)}")
    cluster = LocalCluster(tmp_path_factory.mktemp("real-node"), free_base(), bin_dir, real_node=True)
    cluster.up(log=lambda _m: None)
    try:
        nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json"))["items"]
        simulated = [n["metadata"]["name"] for n in nodes if n["metadata"]["name"] != NODE]
        cluster.kubectl("cordon", *simulated)
        yield RealNodeCluster(cluster, tmp_path_factory.mktemp("specs"))
    finally:
        cluster.down(quiet=True)


def test_the_node_is_the_pinned_kubelet_on_containerd_with_the_playbooks_labels(
    node_cluster: RealNodeCluster,
) -> None:
    from herd_local.objects import real_node_class

    node = json.loads(node_cluster.cluster.kubectl("get", "node", NODE, "-o", "json"))
    info = node["status"]["nodeInfo"]
    assert info["kubeletVersion"] == node_cluster.cluster.version()
    assert info["containerRuntimeVersion"] == "containerd://2.2.9"
    assert "kwok.x-k8s.io/node" not in node["metadata"].get("annotations", {})
    expected = real_node_class()
    assert expected.labels.items() <= node["metadata"]["labels"].items()
    assert node["spec"].get("taints", []) == expected.taints
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", ready


def test_the_example_sweep_trains_in_real_containers_and_reads_back(node_cluster: RealNodeCluster) -> None:
    nc = node_cluster
    spec = nc.spec("digits-real", sweep={"grid": {"hidden": [16, 32], "epochs": [15]}})
    nc.ml_jobs("submit", str(spec))
    text = nc.wait("digits-real", lambda t: "2 succeeded" in t)

    # Each run's metric, from the termination message the shim wrote inside the container.
    pods = nc.pods("digits-real")
    assert {p["spec"]["nodeName"] for p in pods} == {NODE}
    for pod in pods:
        terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert terminated["exitCode"] == 0
        reported = json.loads(terminated["message"])
        index = int(pod["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"])
        written = json.loads((nc.volume / "digits-real" / f"run-{index:05d}" / "metrics.json").read_text())
        assert reported["val_accuracy"] == written["val_accuracy"]
        assert f"{written['val_accuracy']:.4f}" in text
    # The model file, written by the process in the container, is a fitted scikit-learn model.
    model = pickle.loads((nc.volume / "digits-real" / "run-00001" / "model.pkl").read_bytes())
    assert model.hidden_layer_sizes == (32,)

    # Logs through the API server and the real kubelet: the script's own lines (followed: the next test).
    logs = nc.ml_jobs("logs", "digits-real", "run-00001").stdout
    assert "epoch 10: val accuracy" in logs
    assert json.loads(logs.strip().splitlines()[-1])["epochs"] == 15

    # Results through the reader pod, which mounts the same claim read-only on the real node: the experiment's own
    # image (imported, nothing pulled) and its python3, no image named.
    results = nc.ml_jobs("results", "digits-real")
    rows = [line for line in results.stdout.splitlines() if "run-0000" in line]
    assert [r.split("│")[2].strip() for r in rows] == sorted(
        ("run-00000", "run-00001"), key=lambda r: -json.loads((nc.volume / "digits-real" / r / "metrics.json")
                                                                 .read_text())["val_accuracy"]
    )  # fmt: skip


def test_cancel_sends_sigterm_through_the_shim_and_the_checkpoint_stays(node_cluster: RealNodeCluster) -> None:
    nc = node_cluster
    # A run that checkpoints when told to stop. The shim is PID 1 of the container and the script its child:
    # only if the shim forwards the kubelet's SIGTERM does the script see it (else SIGKILL after the grace period).
    trainer = _python("""
        import json, os, signal, sys, time
        from pathlib import Path
        checkpoints = Path(os.environ["CHECKPOINT_DIR"])
        step = 0
        def save(signum, frame):
            state = {"step": step, "signal": signal.Signals(signum).name}
            (checkpoints / "state.json").write_text(json.dumps(state))
            sys.exit(128 + signum)
        signal.signal(signal.SIGTERM, save)
        (checkpoints / "started").write_text(str(os.getpid()))
        while True:
            step += 1
            time.sleep(0.01)
    """)
    spec = nc.spec("trainer-cancel", command=trainer, retries=0, resources={"cpu": "200m", "memory": "128Mi"},
                   sweep={"grid": {"n": [1]}})  # fmt: skip
    nc.ml_jobs("submit", str(spec))
    checkpoints = nc.volume / "trainer-cancel" / "run-00000" / "checkpoint"
    deadline = time.monotonic() + 120
    while not (checkpoints / "started").exists():
        assert time.monotonic() < deadline, "the run did not start within 120 s"
        time.sleep(0.5)
    assert int((checkpoints / "started").read_text()) != 1  # the script is not PID 1: the shim is
    nc.ml_jobs("cancel", "trainer-cancel", "--yes")
    deadline = time.monotonic() + 60
    while not (checkpoints / "state.json").exists():
        assert time.monotonic() < deadline, "no checkpoint on SIGTERM within 60 s of cancel"
        time.sleep(0.5)
    state = json.loads((checkpoints / "state.json").read_text())
    assert state["signal"] == "SIGTERM" and state["step"] > 0, state


def _python(code: str) -> list[str]:
    return ["python", "-c", textwrap.dedent(code)]


def test_a_run_over_its_memory_limit_is_killed_by_the_kernel_and_status_says_so(
    node_cluster: RealNodeCluster,
) -> None:
    nc = node_cluster
    hog = _python("""
        block = bytearray(512 * 2**20)  # zero-filled: every page touched, far over the 128Mi limit
        print("allocated", len(block))
    """)
    spec = nc.spec("mem-hog", command=hog, retries=0, resources={"cpu": "200m", "memory": "128Mi"},
                   sweep={"grid": {"n": [1]}})  # fmt: skip
    nc.ml_jobs("submit", str(spec))
    text = nc.wait("mem-hog", lambda t: "1 failed" in t)
    terminated = nc.pods("mem-hog")[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["reason"] == "OOMKilled", terminated
    line = next(x for x in text.splitlines() if "run-00000" in x)
    assert "OOMKilled" in line or "out of memory" in line, text


def test_a_cpu_limit_is_enforced_by_the_cgroup(node_cluster: RealNodeCluster) -> None:
    nc = node_cluster
    # Two busy processes for 4 s of wall time under a 500m limit: about 2 CPU-seconds without a limit on two
    # cores, about 2 s x 0.5 / 2 = 0.5 per process with it. The cgroup's own counters say how often it throttled.
    burn = _python("""
        import glob, json, multiprocessing, os, time
        def spin(seconds):
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                pass
        start = time.monotonic()
        procs = [multiprocessing.Process(target=spin, args=(4,)) for _ in range(2)]
        for p in procs: p.start()
        for p in procs: p.join()
        wall = time.monotonic() - start
        used = os.times().children_user + os.times().children_system
        cpu = next(d for d in glob.glob("/sys/fs/cgroup/cpu*") if os.path.exists(d + "/cpu.stat"))
        stat = dict(line.split() for line in open(cpu + "/cpu.stat"))
        quota = int(open(cpu + "/cpu.cfs_quota_us").read())
        period = int(open(cpu + "/cpu.cfs_period_us").read())
        metrics = {"cpu_per_wall": round(used / wall, 3), "nr_throttled": int(stat["nr_throttled"]),
                   "nr_periods": int(stat["nr_periods"]), "quota_cpus": quota / period}
        json.dump(metrics, open(os.environ["METRICS_FILE"], "w"))
        print(json.dumps(metrics))
    """)
    spec = nc.spec("cpu-burn", command=burn, retries=0, resources={"cpu": "500m", "memory": "256Mi"},
                   objective={"metric": "cpu_per_wall", "goal": "min"}, sweep={"grid": {"n": [1]}})  # fmt: skip
    nc.ml_jobs("submit", str(spec))
    nc.wait("cpu-burn", lambda t: "1 succeeded" in t)
    metrics = json.loads((nc.volume / "cpu-burn" / "run-00000" / "metrics.json").read_text())
    print(f"cpu limit 500m: {metrics}")  # the figure docs/development/real-node.md quotes
    assert metrics["quota_cpus"] == 0.5
    assert metrics["nr_throttled"] > 0
    assert metrics["cpu_per_wall"] < 0.75, metrics


def test_real_exits_a_retry_resumes_from_the_same_checkpoint_a_final_code_fails_at_once(
    node_cluster: RealNodeCluster,
) -> None:
    nc = node_cluster
    flaky = _python("""
        import json, os, sys
        from pathlib import Path
        seen = Path(os.environ["CHECKPOINT_DIR"]) / "attempts"
        attempts = (seen.read_text().split() if seen.exists() else []) + [os.environ["RUN_ATTEMPT"]]
        seen.write_text(" ".join(attempts))
        if os.environ["RUN_INDEX"] == "1":
            sys.exit(2)  # called wrongly: a final exit code, never retried
        if len(attempts) == 1:
            sys.exit(1)  # a first attempt that fails: retried, and the retry finds its checkpoint
        json.dump({"attempts_seen": len(attempts)}, open(os.environ["METRICS_FILE"], "w"))
    """)
    spec = nc.spec("flaky", command=flaky, retries=2, final_exit_codes=[2],
                   resources={"cpu": "200m", "memory": "128Mi"},
                   objective={"metric": "attempts_seen", "goal": "max"},
                   sweep={"grid": {"n": [0, 1]}})  # fmt: skip
    nc.ml_jobs("submit", str(spec))
    text = nc.wait("flaky", lambda t: "1 succeeded" in t and "1 failed" in t)
    runs = nc.volume / "flaky"
    assert (runs / "run-00000" / "checkpoint" / "attempts").read_text() == "1 2"
    assert json.loads((runs / "run-00000" / "metrics.json").read_text()) == {"attempts_seen": 2}
    assert (runs / "run-00001" / "checkpoint" / "attempts").read_text() == "1"
    by_run = {line.split()[0]: line for line in text.splitlines() if line.startswith("run-0000")}
    assert by_run["run-00000"].split()[1:3] == ["succeeded", "2"], text
    assert by_run["run-00001"].split()[1:3] == ["failed", "1"], text
    assert " 2 " in by_run["run-00001"], text  # its exit code


def test_an_image_that_cannot_be_pulled_is_why_the_run_is_pending(node_cluster: RealNodeCluster) -> None:
    nc = node_cluster
    typo = "registry.example.com/herd/digitz:0.1.0"  # no such image here, and no registry reachable
    nc.ml_jobs("submit", str(nc.spec("typo", image=typo, sweep={"grid": {"n": [1]}})))
    text = nc.wait("typo", lambda t: "cannot be pulled" in t, timeout=120)
    assert f"1 run image {typo} cannot be pulled (" in text, text
    assert "run-00000  pending" in text, text
    nc.ml_jobs("cancel", "typo", "--yes")


def test_logs_follow_streams_a_running_run_until_it_ends(node_cluster: RealNodeCluster) -> None:
    nc = node_cluster
    ticker = _python("""
        import time
        for i in range(12):
            print(f"tick {i}", flush=True)
            time.sleep(1)
    """)
    nc.ml_jobs("submit", str(nc.spec("ticker", command=ticker, retries=0, sweep={"grid": {"n": [1]}})))
    nc.wait("ticker", lambda t: "running" in t.split("\n", 2)[1], timeout=120)
    follow = subprocess.Popen(
        [str(Path(sys.executable).parent / "ml-jobs"), "logs", "ticker", "run-00000", "-f"],
        stdout=subprocess.PIPE,
        text=True,
        env=nc.env,
    )
    try:
        assert follow.stdout is not None
        arrivals = [(line.strip(), time.monotonic()) for line in follow.stdout]
        assert follow.wait(timeout=60) == 0  # the stream ends when the container does
    finally:
        follow.kill()
    assert [line for line, _ in arrivals] == [f"tick {i}" for i in range(12)]
    # Streamed as the container wrote them (a second apart), not handed over at the end.
    assert arrivals[-1][1] - arrivals[0][1] > 4, arrivals
