"""A real containerd (the release scripts/components.sh builds) imports the pause archive under its full name,
pinned for the CRI plugin, with the arguments ``import_args`` gives, and runs it; and runs each control-plane image
with a bare command name, as kubeadm's static pod manifests do."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from herd_local import images
from tests.conftest import built_components
from tests.herd_local.test_images import _cached

pytestmark = pytest.mark.slow

CONFIG = """version = 3
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images"]
"""


@pytest.fixture
def real_containerd(tmp_path: Path) -> Iterator[tuple[list[str], dict[str, str]]]:
    """A throwaway containerd with its own root, state and socket; yields the ctr command and its environment."""
    if os.geteuid() != 0:
        pytest.skip("containerd needs root")
    bin_dir = built_components("containerd")
    (tmp_path / "config.toml").write_text(CONFIG)
    socket = tmp_path / "containerd.sock"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
    args = ["--config", tmp_path / "config.toml", "--root", tmp_path / "root", "--state", tmp_path / "state"]
    with (tmp_path / "containerd.log").open("w") as log:
        daemon = subprocess.Popen(
            [str(bin_dir / "containerd"), *map(str, args), "--address", str(socket)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    ctr = [str(bin_dir / "ctr"), "--address", str(socket)]
    try:
        deadline = time.monotonic() + 30
        while subprocess.run([*ctr, "version"], capture_output=True, env=env, check=False).returncode != 0:
            assert daemon.poll() is None, (tmp_path / "containerd.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "containerd did not answer within 30 s"
            time.sleep(0.2)
        yield ctr, env
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
        shutil.rmtree(tmp_path / "root", ignore_errors=True)


def test_ctr_imports_the_pause_archive_under_its_name(real_containerd: tuple[list[str], dict[str, str]]) -> None:
    ctr, env = real_containerd
    image = _cached("pause")

    def run(*args: str) -> str:
        done = subprocess.run([*ctr, *args], capture_output=True, text=True, env=env, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("-n", "k8s.io", "images", "import", *images.import_args(image.archive))
    listed = run("-n", "k8s.io", "images", "ls")
    rows = [line.split() for line in listed.splitlines()[1:]]
    assert [row[0] for row in rows] == [image.reference]
    assert images.CRI_PINNED_LABEL in rows[0]
    if shutil.which("runc", path=env["PATH"]):
        # The sandbox binary itself, as upstream stamps it.
        out = run("-n", "k8s.io", "run", "--rm", image.reference, "pause-version", "/pause", "-v")
        assert out.strip() == "pause.c " + image.recipe["cflags"][-1].removeprefix("-DVERSION=")


@pytest.mark.parametrize("name", [*images.CONTROL_PLANE, "etcd"])
def test_ctr_imports_a_control_plane_image_and_runs_it_as_kubeadm_does(
    real_containerd: tuple[list[str], dict[str, str]], name: str
) -> None:
    ctr, env = real_containerd
    image = _cached(name)

    def run(*args: str) -> str:
        done = subprocess.run([*ctr, *args], capture_output=True, text=True, env=env, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    run("-n", "k8s.io", "images", "import", *images.import_args(image.archive))
    rows = [line.split() for line in run("-n", "k8s.io", "images", "ls").splitlines()[1:]]
    assert [row[0] for row in rows] == [image.reference]
    if not shutil.which("runc", path=env["PATH"]):
        pytest.skip("no runc: imported, not run")
    # A command replaces the entrypoint, as a manifest's `command: [<name>, ...]` does; the image's PATH finds it.
    out = run("-n", "k8s.io", "run", "--rm", image.reference, f"{name}-version", name, "--version")
    version = image.recipe["version"]
    assert out.splitlines()[0] == (f"etcd Version: {version}" if name == "etcd" else f"Kubernetes {version}")
