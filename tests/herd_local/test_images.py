"""The real node's images: each recipe follows its sources (the Dockerfile, kubeadm's pause version, upstream's
pause.c), a changed input names a new archive and an unchanged one the same, and a built archive is an OCI layout
that names its image by the full reference with the configuration its recipe gives."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tarfile
import tomllib
from pathlib import Path

import pytest

from herd_local import cli, images
from herd_local.images import Image, ImageError, digits_image, pause_image, read_dockerfile
from tests.conftest import REPO


def _kubernetes_pin() -> str:
    text = (REPO / "scripts" / "components" / "kubernetes" / "go.mod").read_text()
    m = re.search(r"^\s*(?:require\s+)?k8s\.io/kubernetes (v\S+)", text, re.M)
    assert m, "scripts/components/kubernetes/go.mod does not require k8s.io/kubernetes"
    return m.group(1)


def _module_dir() -> Path:
    """The pinned Kubernetes module in the Go module cache, read without running go (skip when it is absent)."""
    cache = Path(os.environ.get("GOMODCACHE") or Path.home() / "go" / "pkg" / "mod")
    directory = cache / "k8s.io" / f"kubernetes@{_kubernetes_pin()}"
    if not directory.is_dir():
        pytest.skip(f"the Go module cache has no {directory.name} (scripts/components.sh downloads it)")
    return directory


# ------------------------------------------------------------------------------------------------ sources
def test_pause_version_is_kubeadms() -> None:
    constants = (_module_dir() / "cmd" / "kubeadm" / "app" / "constants" / "constants.go").read_text()
    m = re.search(r'^\s*PauseVersion\s*=\s*"([^"]+)"', constants, re.M)
    assert m, "kubeadm's constants.go has no PauseVersion"
    assert m.group(1) == images.PAUSE_VERSION


def test_pause_is_built_from_the_modules_source() -> None:
    module = (_kubernetes_pin(), _module_dir())
    image = pause_image(Path("/nonexistent"), module)
    assert image.reference == images.PAUSE_IMAGE == f"registry.k8s.io/pause:{images.PAUSE_VERSION}"
    assert image.sources["pause.c"] == module[1] / "build" / "pause" / "linux" / "pause.c"
    assert f"-DVERSION=v{images.PAUSE_VERSION}-{module[0]}" in image.recipe["cflags"]


def test_the_dockerfile_pins_are_the_examples_extra() -> None:
    # The image and `pip install .[examples]` install the same pins: the Dockerfile is the image's one source.
    extra = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]["examples"]
    dockerfile = read_dockerfile()
    assert sorted(dockerfile.pins) == sorted(extra)
    assert dockerfile.python == images.SUITE_PYTHON
    assert dockerfile.copies == (("examples/", "/app/examples/"),)


def test_the_image_is_the_one_the_example_spec_runs() -> None:
    import yaml

    spec = yaml.safe_load((REPO / "examples" / "digits-sweep.yaml").read_text())
    image = digits_image(Path("/nonexistent"))
    assert image.reference == spec["image"]
    assert image.recipe["config"]["workdir"] == spec["workdir"]


@pytest.mark.parametrize(
    ("text", "pins", "workdir"),
    [
        ("FROM python:3.11-slim\nRUN pip install --no-cache-dir a==1 b[x]==2.0\n", ("a==1", "b[x]==2.0"), "/"),
        ("# c\nFROM python:3.11\nRUN pip install \\\n    a==1 \\\n    c==3\nWORKDIR /w\n", ("a==1", "c==3"), "/w"),
        (
            "FROM docker.io/library/python:3.11.9-bookworm\nRUN pip3 install a==1\nRUN pip install b==2\n",
            ("a==1", "b==2"),
            "/",
        ),
    ],
)
def test_dockerfile_reading(tmp_path: Path, text: str, pins: tuple[str, ...], workdir: str) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    dockerfile = read_dockerfile(path)
    assert (dockerfile.python, dockerfile.pins, dockerfile.workdir) == ("3.11", pins, workdir)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("FROM python:3.11-slim\nWORKDIR /app\n", r"Dockerfile: no pinned package \(name==version\)"),
        ("FROM python:3.11-slim\nRUN pip install numpy\n", r"Dockerfile:2: pip install numpy: pin it"),
        ("FROM debian:bookworm\nRUN pip install a==1\n", r"Dockerfile:1: FROM debian:bookworm: .* python"),
        (
            "FROM python:3.11\nENV A=1\nRUN pip install a==1\n",
            r"Dockerfile:2: ENV A=1: herd's image build follows",
        ),
        ("FROM python:3.11\nRUN apt-get update\n", r"Dockerfile:2: RUN apt-get update: .* only `pip install`"),
        ("RUN pip install a==1\n", r"Dockerfile: no FROM python"),
    ],
)
def test_dockerfile_errors_name_the_file(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(text)
    with pytest.raises(ImageError, match=re.escape(str(path)) + problem.removeprefix("Dockerfile")) as e:
        read_dockerfile(path)
    assert "\n" not in str(e.value)


def test_a_python_other_than_bookworms_is_refused(tmp_path: Path) -> None:
    context = _context(tmp_path)
    dockerfile = context / "examples" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("python:3.11-slim", "python:3.12-slim"))
    with pytest.raises(
        ImageError, match=r"examples/Dockerfile: FROM python:3.12, but Debian bookworm's python3 is 3.11"
    ):
        _digits(context, tmp_path)


# ------------------------------------------------------------------------------------------------ recipe hashes
def _context(tmp_path: Path) -> Path:
    context = tmp_path / "context"
    shutil.copytree(REPO / "examples", context / "examples", ignore=shutil.ignore_patterns(*images.IGNORED))
    return context


def _digits(context: Path, cache: Path) -> Image:
    examples = context / "examples"
    return digits_image(cache, context, examples / "Dockerfile", examples / "digits-sweep.yaml")


def _base(image: Image) -> str:
    return images.recipe_hash(image.recipe["base"])


def test_an_unchanged_recipe_names_the_same_archive(tmp_path: Path) -> None:
    context = _context(tmp_path)
    first = _digits(context, tmp_path)
    # What running the example here leaves behind is not copied, so it does not count.
    (context / "examples" / "__pycache__").mkdir()
    (context / "examples" / "__pycache__" / "train_digits.cpython-311.pyc").write_bytes(b"\0")
    assert _digits(context, tmp_path).archive == first.archive
    assert first.archive.parent == tmp_path
    assert first.archive.name == f"digits-0.1.0-{first.digest}.tar"


def test_an_edit_under_examples_rebuilds_only_the_app_layer(tmp_path: Path) -> None:
    context = _context(tmp_path)
    before = _digits(context, tmp_path)
    with (context / "examples" / "train_digits.py").open("a") as f:
        f.write("# edited\n")
    after = _digits(context, tmp_path)
    assert after.digest != before.digest
    assert _base(after) == _base(before)


def test_a_new_file_or_an_executable_bit_under_examples_counts(tmp_path: Path) -> None:
    context = _context(tmp_path)
    before = _digits(context, tmp_path).digest
    (context / "examples" / "new.txt").write_text("x")
    added = _digits(context, tmp_path).digest
    (context / "examples" / "new.txt").chmod(0o755)
    assert len({before, added, _digits(context, tmp_path).digest}) == 3


def test_a_changed_pin_rebuilds_the_base(tmp_path: Path) -> None:
    context = _context(tmp_path)
    before = _digits(context, tmp_path)
    dockerfile = context / "examples" / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("numpy==2.4.6", "numpy==2.4.5"))
    after = _digits(context, tmp_path)
    assert _base(after) != _base(before)
    assert after.digest != before.digest


def _fake_module(tmp_path: Path) -> Path:
    """A stand-in for the Kubernetes module: just a pause.c."""
    source = tmp_path / "kubernetes" / images.PAUSE_SOURCE
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text("int main(void) { return 0; }\n")
    return tmp_path / "kubernetes"


def test_a_changed_pause_source_or_release_rebuilds_pause(tmp_path: Path) -> None:
    source = _fake_module(tmp_path) / images.PAUSE_SOURCE
    before = pause_image(tmp_path, ("v1.36.3", tmp_path / "kubernetes"))
    assert pause_image(tmp_path, ("v1.36.3", tmp_path / "kubernetes")).archive == before.archive
    assert pause_image(tmp_path, ("v1.36.4", tmp_path / "kubernetes")).digest != before.digest
    source.write_text("int main(void) { return 1; }\n")
    assert pause_image(tmp_path, ("v1.36.3", tmp_path / "kubernetes")).digest != before.digest


def test_a_missing_pause_source_is_named(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match=r"build/pause/linux/pause.c: not found"):
        pause_image(tmp_path, ("v1.36.3", tmp_path))


def test_import_args(tmp_path: Path) -> None:
    image = pause_image(tmp_path, ("v1.36.3", _fake_module(tmp_path)))
    assert images.import_args(image) == ["--label", "io.cri-containerd.pinned=pinned", str(image.archive)]
    assert images.import_args(image.archive) == images.import_args(image)
    assert images.import_args(image, snapshotter="native")[-3:] == ["--snapshotter", "native", str(image.archive)]


# ------------------------------------------------------------------------------------------------ built archives
def _cached(name: str) -> Image:
    """The image called ``name``, built (skip when it is not; under CI=true, fail)."""
    try:
        # The node's images need no built components; the control plane's are planned from them.
        plan = images.images if name in ("pause", "digits") else images.kubeadm_images
        image = next(i for i in plan() if i.name == name)
    except ImageError as e:
        if os.environ.get("CI"):
            pytest.fail(f"CI must be able to build the images (scripts/test.sh does): {e}")
        pytest.skip(f"the images cannot be planned here: {e}")
    if not image.built:
        if os.environ.get("CI"):
            pytest.fail(
                f"CI must build the images first (scripts/test.sh does): {image.reference} ({image.archive})"
            )
        pytest.skip(f"{image.reference} is not built here ({image.archive}; scripts/images.sh builds it, as root)")
    return image


def _blob(tar: tarfile.TarFile, descriptor: dict) -> bytes:
    algorithm, _, digest = descriptor["digest"].partition(":")
    f = tar.extractfile(f"blobs/{algorithm}/{digest}")
    assert f is not None, f"{descriptor['digest']} is not in the archive"
    data = f.read()
    assert len(data) == descriptor["size"] and hashlib.sha256(data).hexdigest() == digest
    return data


@pytest.mark.parametrize(
    "which", ["pause", "digits", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd"]
)
def test_a_built_archive_is_an_oci_layout_naming_its_image(which: str) -> None:
    image = _cached(which)
    with tarfile.open(image.archive) as tar:
        members = {m.name: m for m in tar.getmembers()}
        layout = json.loads(tar.extractfile("oci-layout").read())  # type: ignore[union-attr]
        assert layout == {"imageLayoutVersion": "1.0.0"}
        index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        # One image, named by its full reference: what containerd's import keeps as the image's name.
        assert [m["annotations"][images.REF_NAME] for m in index["manifests"]] == [image.reference]
        manifest = json.loads(_blob(tar, index["manifests"][0]))
        config = json.loads(_blob(tar, manifest["config"]))
        for layer in manifest["layers"]:
            algorithm, _, digest = layer["digest"].partition(":")
            assert members[f"blobs/{algorithm}/{digest}"].size == layer["size"]
    assert (config["os"], config["architecture"]) == ("linux", "amd64")
    assert len(config["rootfs"]["diff_ids"]) == len(manifest["layers"])
    recipe = image.recipe["config"]
    runtime = config["config"]
    assert runtime.get("Entrypoint") == recipe.get("entrypoint")
    assert runtime.get("Cmd") == recipe.get("cmd")
    assert runtime.get("User") == recipe.get("user")
    assert runtime.get("WorkingDir") == recipe.get("workdir")
    assert runtime.get("Env") == recipe.get("env")
    # pause: one layer (the binary); the example: the base (Debian, python3, the pins) and the app (COPY); the
    # control plane: the minimal root and the binary.
    assert len(manifest["layers"]) == {"pause": 1, "digits": 2}.get(which, 2)


def test_the_command_says_an_error_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    def broken(cache: Path | None = None) -> list[Image]:
        raise ImageError("examples/Dockerfile: no pinned package (name==version) on a RUN pip install line")

    monkeypatch.setattr(images, "images", broken)
    monkeypatch.delenv("HERD_DEBUG", raising=False)
    with pytest.raises(SystemExit) as exit_status:
        cli.main(["images", "--node"])
    assert exit_status.value.code == 2
    assert capsys.readouterr().err == (
        "herd-local: error: examples/Dockerfile: no pinned package (name==version) on a RUN pip install line\n"
    )
