"""The control-plane images kubeadm init runs as static pods: named as kubeadm v1.36.3 names them (etcd by the
pinned release's tag), built from the pinned binaries, laid out so that kubeadm's manifests (``command:
[kube-apiserver, ...]``, ``[etcd, ...]``) find the binary through the image's PATH, and kept apart from what the
local cluster's node imports."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from herd_local import cli, images
from herd_local.images import Image, ImageError, control_plane_image
from tests.conftest import REPO, built_components
from tests.herd_local.test_images import _blob, _cached

NAMES = [*images.CONTROL_PLANE, "etcd"]


def _pin(wrapper: str, module: str) -> str:
    text = (REPO / "scripts" / "components" / wrapper / "go.mod").read_text()
    m = re.search(rf"^\s*(?:require\s+)?{re.escape(module)} (v\S+)", text, re.M)
    assert m, f"scripts/components/{wrapper}/go.mod does not require {module}"
    return m.group(1)


def _fake_bin(tmp_path: Path, says: dict[str, str] | None = None) -> Path:
    """A bin directory of stand-in binaries (shell scripts) that print a version, as the real ones do."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in NAMES:
        version = (says or {}).get(name) or (
            f"etcd Version: {images.ETCD_VERSION[1:]}"
            if name == "etcd"
            else f"Kubernetes {images.KUBERNETES_VERSION}"
        )
        (bin_dir / name).write_text(f"#!/bin/sh\necho '{version}'\n")
        (bin_dir / name).chmod(0o755)
    return bin_dir


# ----------------------------------------------------------------------------------------------- names and recipes
def test_the_tags_follow_the_wrapper_modules() -> None:
    assert _pin("kubernetes", "k8s.io/kubernetes") == images.KUBERNETES_VERSION
    assert _pin("etcd", "go.etcd.io/etcd/server/v3") == images.ETCD_VERSION
    # kubeadm's etcd tags are <etcd version>-<image revision>.
    assert images.ETCD_VERSION.removeprefix("v") + "-0" == images.ETCD_IMAGE_TAG
    assert f"registry.k8s.io/etcd:{images.ETCD_IMAGE_TAG}" == images.ETCD_IMAGE


def test_the_control_plane_is_named_as_kubeadm_names_it(tmp_path: Path) -> None:
    # GIVEN stand-in binaries, WHEN the images are planned, THEN each is named as kubeadm's static pods name it.
    bin_dir = _fake_bin(tmp_path)
    planned = [control_plane_image(tmp_path, name, bin_dir) for name in NAMES]
    assert [i.reference for i in planned] == [
        f"registry.k8s.io/kube-apiserver:{images.KUBERNETES_VERSION}",
        f"registry.k8s.io/kube-controller-manager:{images.KUBERNETES_VERSION}",
        f"registry.k8s.io/kube-scheduler:{images.KUBERNETES_VERSION}",
        images.ETCD_IMAGE,
    ]
    assert [i.archive.name.rpartition("-")[0] for i in planned] == [
        f"{name}-{images.ETCD_IMAGE_TAG if name == 'etcd' else images.KUBERNETES_VERSION}" for name in NAMES
    ]


def test_the_nodes_images_leave_the_control_plane_out(tmp_path: Path) -> None:
    # scripts/local-cluster.sh up imports images(): the control plane there runs as processes, not pods.
    assert [i.name for i in images.images(tmp_path)] == ["pause", "digits"]


@pytest.mark.parametrize("name", NAMES)
def test_a_rebuilt_binary_names_a_new_archive(tmp_path: Path, name: str) -> None:
    bin_dir = _fake_bin(tmp_path)
    before = control_plane_image(tmp_path, name, bin_dir)
    assert control_plane_image(tmp_path, name, bin_dir).archive == before.archive
    with (bin_dir / name).open("a") as f:
        f.write("# rebuilt\n")
    assert control_plane_image(tmp_path, name, bin_dir).digest != before.digest
    assert before.sources["binary"] == (bin_dir / name).resolve()


@pytest.mark.parametrize("name", NAMES)
def test_the_runtime_configuration_suits_kubeadms_manifests(tmp_path: Path, name: str) -> None:
    config = control_plane_image(tmp_path, name, _fake_bin(tmp_path)).recipe["config"]
    # The manifests' command is the bare name: PATH must find /usr/local/bin. They run as root.
    assert config["env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    assert config["user"] == "0:0"
    if name == "etcd":  # etcd's own Dockerfile
        assert (config.get("entrypoint"), config["cmd"], config["workdir"]) == (
            None,
            ["/usr/local/bin/etcd"],
            "/var/lib/etcd",
        )
    else:  # build/server-image's, with the binary for its /go-runner
        assert (config["entrypoint"], config.get("cmd")) == ([f"/usr/local/bin/{name}"], None)


def test_an_unknown_or_missing_binary_is_named(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"kube-proxy: not a control-plane image \(one of kube-apiserver, "):
        control_plane_image(tmp_path, "kube-proxy", tmp_path)
    with pytest.raises(ImageError, match=rf"{re.escape(str(tmp_path))}/etcd: not found \(scripts/components.sh"):
        control_plane_image(tmp_path, "etcd", tmp_path)


@pytest.mark.parametrize(
    ("name", "says", "ok"),
    [
        ("kube-apiserver", "Kubernetes v1.36.3", True),
        ("kube-apiserver", "Kubernetes v1.36.2", False),
        ("kube-scheduler", "Kubernetes v1.36.30", False),
        ("kube-scheduler", "Kubernetes v0.0.0-master+$Format:%H$", False),
        ("etcd", "etcd Version: 3.6.16\nGit SHA: Not provided", True),
        ("etcd", "etcd Version: 3.6.15", False),
    ],
)
def test_the_build_refuses_a_binary_of_another_release(tmp_path: Path, name: str, says: str, ok: bool) -> None:
    if "v1.36.3" in says and images.KUBERNETES_VERSION != "v1.36.3":
        pytest.skip("the cases are written for v1.36.3")
    if "3.6.16" in says and images.ETCD_VERSION != "v3.6.16":
        pytest.skip("the cases are written for etcd v3.6.16")
    image = control_plane_image(tmp_path, name, _fake_bin(tmp_path, {name: says}))
    if ok:
        images._check_version(image)
    else:
        with pytest.raises(ImageError, match=rf"{re.escape(image.reference)}: .*--version says .*, not "):
            images._check_version(image)


def test_the_command_selects_a_set(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    def plan(names: list[str]):
        def planned(cache: Path | None = None) -> list[Image]:
            return [Image(f"example.com/{n}:1", {"n": n}, {}, Path("/nonexistent")) for n in names]

        return planned

    monkeypatch.setattr(images, "images", plan(["pause", "digits"]))
    monkeypatch.setattr(images, "kubeadm_images", plan(["pause", "etcd"]))

    def missing(argv: list[str]) -> list[str]:
        with pytest.raises(SystemExit) as exit_status:
            cli.main(["images", *argv])
        assert exit_status.value.code == 1
        return re.findall(r"example\.com/(\w+):1 is not built", capsys.readouterr().err)

    assert missing(["--dir"]) == ["pause", "digits", "etcd"]  # both sets, each image once
    assert missing(["--dir", "--node"]) == ["pause", "digits"]
    assert missing(["--dir", "--kubeadm"]) == ["pause", "etcd"]


# ------------------------------------------------------------------------------------------------ built archives
def _layers(image: Image) -> tuple[dict, list[bytes]]:
    """The image's configuration and its layers (uncompressed tars), checked against their digests."""
    with tarfile.open(image.archive) as tar:
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        assert [m["annotations"][images.REF_NAME] for m in index["manifests"]] == [image.reference]
        manifest = json.loads(_blob(tar, index["manifests"][0]))
        config = json.loads(_blob(tar, manifest["config"]))
        layers = [gzip.decompress(_blob(tar, layer)) for layer in manifest["layers"]]
    for layer, diff_id in zip(layers, config["rootfs"]["diff_ids"], strict=True):
        assert "sha256:" + hashlib.sha256(layer).hexdigest() == diff_id
    return config, layers


def _extract(layers: list[bytes], rootfs: Path) -> None:
    """The root filesystem, layer by layer, as a runtime unpacks it (these layers have no whiteouts)."""
    for layer in layers:
        with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
            assert not [m.name for m in tar.getmembers() if Path(m.name).name.startswith(".wh.")]
            tar.extractall(rootfs, filter="fully_trusted")


@pytest.mark.parametrize("name", NAMES)
def test_a_built_image_runs_the_pinned_binary(tmp_path: Path, name: str) -> None:
    image = _cached(name)
    config, layers = _layers(image)
    runtime = config["config"]
    assert runtime["Env"] == image.recipe["config"]["env"] and runtime["User"] == "0:0"
    assert [h["created_by"].split(" ")[0] for h in config["history"] if not h.get("empty_layer")] == ["a", "COPY"]
    rootfs = tmp_path / "rootfs"
    _extract(layers, rootfs)
    # The minimal root: distroless static's users, a sticky /tmp; the binary in /usr/local/bin and nothing else.
    users = [line.split(":")[0] for line in (rootfs / "etc" / "passwd").read_text().splitlines()]
    assert users == ["root", "nobody", "nonroot"]
    assert (rootfs / "tmp").stat().st_mode & 0o7777 == 0o1777
    assert sorted(p.name for p in (rootfs / "usr" / "local" / "bin").iterdir()) == [name]
    binary = rootfs / "usr" / "local" / "bin" / name
    # The pinned one: the very file scripts/components.sh built.
    assert hashlib.sha256(binary.read_bytes()).hexdigest() == image.recipe["sha256"]
    env = dict(e.split("=", 1) for e in runtime["Env"])
    if os.geteuid() == 0 and shutil.which("chroot"):
        # As kubeadm's manifest runs it: the bare name, found through the image's PATH, inside its own root.
        command = ["chroot", str(rootfs), name, "--version"]
    else:
        command = [str(binary), "--version"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    first = done.stdout.splitlines()[0]
    want = (
        f"etcd Version: {image.recipe['version']}" if name == "etcd" else f"Kubernetes {image.recipe['version']}"
    )
    assert first == want


def test_kubeadm_lists_nothing_else_but_its_addons(tmp_path: Path) -> None:
    # The real kubeadm, with the etcd tag the playbooks set: every image it would pull is built here, but CoreDNS
    # and kube-proxy (their addon phases are skipped on the test hosts).
    bin_dir = built_components("kubeadm")
    config = tmp_path / "kubeadm.yaml"
    config.write_text(
        "apiVersion: kubeadm.k8s.io/v1beta4\n"
        "kind: ClusterConfiguration\n"
        f"kubernetesVersion: {images.KUBERNETES_VERSION}\n"
        f"etcd:\n  local:\n    imageTag: {images.ETCD_IMAGE_TAG}\n"
    )
    done = subprocess.run(
        [str(bin_dir / "kubeadm"), "config", "images", "list", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    listed = done.stdout.split()
    addons = [r for r in listed if r.rpartition(":")[0].rpartition("/")[2] in ("coredns", "kube-proxy")]
    assert len(addons) == 2, listed
    built = [i.reference for i in images.kubeadm_images(tmp_path, bin_dir)]
    assert sorted(set(listed) - set(addons)) == sorted(built)
