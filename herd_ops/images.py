"""The container images the local cluster's real node needs, built here without Docker or a registry, and cached.

The node's containerd can pull nothing here, so every image a Pod names must already be in its store. This module
builds each one as an OCI-layout tar archive with umoci, once, under ``$HERD_IMAGE_CACHE`` (default
``/var/cache/herd/images``), the archive named by a hash of the image's recipe: a changed input builds afresh, an
unchanged one is reused. Archives of older recipes are kept (like scripts/components.sh's builds); deleting the
directory is safe.

- ``registry.k8s.io/pause:<PAUSE_VERSION>``, the sandbox image: upstream's ``build/pause/linux/pause.c`` from the
  Kubernetes module that scripts/components/kubernetes/go.mod pins, compiled and packed as upstream's
  ``build/pause/Makefile`` and ``Dockerfile`` do.
- the example's image, under the name examples/digits-sweep.yaml gives it: the equivalent of examples/Dockerfile.
  Debian bookworm's python3 (debootstrap from this machine's mirror) with the Dockerfile's pinned pip packages is
  one layer, cached apart; the Dockerfile's COPY is a second layer, so an edit under examples/ rebuilds only that.

Each archive's index.json names its image by the full reference (``org.opencontainers.image.ref.name``), which
containerd 2.2's ``ctr images import`` keeps as the image's name (it prefixes only a bare tag, and looks at
``io.containerd.image.name`` first, which umoci does not write). ``import_args`` gives the arguments of
``ctr images import`` that import one into a kubelet's containerd::

    ctr --address <socket> -n k8s.io images import --label io.cri-containerd.pinned=pinned <archive>

The label pins the image in the CRI plugin, so the kubelet's image garbage collection never removes what nothing
could pull again. The import unpacks into ctr's default snapshotter (overlayfs, the CRI plugin's default too) for
this machine's platform; each archive holds that one platform.

>>> from herd_ops import images
>>> for image in images.ensure():                                             # doctest: +SKIP
...     subprocess.run(["ctr", "-n", "k8s.io", "images", "import", *images.import_args(image)], check=True)
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ml_jobs.errors import HerdError

__all__ = [
    "PAUSE_IMAGE",
    "PAUSE_VERSION",
    "Dockerfile",
    "Image",
    "ImageError",
    "cache_dir",
    "digits_image",
    "ensure",
    "images",
    "import_args",
    "kubernetes_module",
    "pause_image",
    "read_dockerfile",
    "recipe_hash",
]

REPO = Path(__file__).resolve().parent.parent
CACHE_ENV = "HERD_IMAGE_CACHE"
DEFAULT_CACHE = Path("/var/cache/herd/images")
# Bump when the build steps change in a way the recipes below do not show.
RECIPE_VERSION = 1

# kubeadm's sandbox image tag: PauseVersion in cmd/kubeadm/app/constants/constants.go of the Kubernetes module
# scripts/components/kubernetes/go.mod pins (v1.36.3). tests/images checks the two agree.
PAUSE_VERSION = "3.10.2"
PAUSE_REPOSITORY = "registry.k8s.io/pause"
PAUSE_IMAGE = f"{PAUSE_REPOSITORY}:{PAUSE_VERSION}"  # containerd's sandbox image
KUBERNETES_MODULE = "k8s.io/kubernetes"
KUBERNETES_WRAPPER = REPO / "scripts" / "components" / "kubernetes"
PAUSE_SOURCE = Path("build/pause/linux/pause.c")  # inside the Kubernetes module
# build/pause/Makefile's CFLAGS (its VERSION is v$(TAG)-$(REV), REV the Kubernetes tag); it strips the binary.
PAUSE_CFLAGS = ("-Os", "-Wall", "-Werror", "-static")
# build/pause/Dockerfile: FROM scratch, the binary at /pause, USER 65535:65535, ENTRYPOINT ["/pause"].
PAUSE_CONFIG = {"user": "65535:65535", "entrypoint": ["/pause"]}

EXAMPLES = REPO / "examples"
EXAMPLE_DOCKERFILE = EXAMPLES / "Dockerfile"
EXAMPLE_SPEC = EXAMPLES / "digits-sweep.yaml"
DEBIAN_MIRROR_SCRIPT = REPO / "scripts" / "debian-mirror.sh"
SUITE = "bookworm"
SUITE_PYTHON = "3.11"  # bookworm's python3; the Dockerfile's FROM must name the same minor version
# python-is-python3: the example's command is `python ...`, as in the python image.
DEBIAN_PACKAGES = ("python3", "python-is-python3")
# What the python image sets that a Pod may rely on: its PATH (pip's scripts in /usr/local/bin), a UTF-8 locale,
# and python3 as the command when a Pod gives none.
PYTHON_ENV = ("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8")
PYTHON_CMD = ["python3"]
# Left out of COPY (and of its hash): what running the example here leaves behind.
IGNORED = ("__pycache__", "*.pyc")

CRI_PINNED_LABEL = "io.cri-containerd.pinned=pinned"
REF_NAME = "org.opencontainers.image.ref.name"


class ImageError(HerdError):
    """An image cannot be built: a recipe's input is wrong or missing, or a build step failed."""


def cache_dir() -> Path:
    """Where the archives are cached: ``$HERD_IMAGE_CACHE``, else ``/var/cache/herd/images``."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def recipe_hash(recipe: Mapping[str, Any]) -> str:
    """The short hash that names a recipe's build (12 hex digits of the sha256 of its canonical JSON)."""
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


# ------------------------------------------------------------------------------------------------ the Dockerfile
@dataclass(frozen=True)
class Dockerfile:
    """What the example image takes from examples/Dockerfile (its one source of truth).

    Attributes:
        path: the Dockerfile.
        python: the Python minor version its ``FROM python:<v>-...`` names (Debian's python3 stands in for it).
        pins: the ``name==version`` arguments of its ``RUN pip install`` lines, in order.
        workdir: its ``WORKDIR`` (``/`` when it has none).
        copies: its ``COPY <source> <destination>`` pairs, sources relative to the build context.
    """

    path: Path
    python: str
    pins: tuple[str, ...]
    workdir: str
    copies: tuple[tuple[str, str], ...]


_PIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9,._-]+\])?==[A-Za-z0-9.+!_-]+")
_FROM_PYTHON = re.compile(r"(?:\S+/)?python:(\d+\.\d+)(?:[.-]\S*)?")


def _instructions(path: Path) -> Iterator[tuple[int, str, str]]:
    """(line number, instruction, arguments) of each instruction, continuation lines joined."""
    try:
        lines = path.read_text().splitlines()
    except OSError as e:
        raise ImageError(f"{_shown(path)}: cannot read: {e.strerror}") from e
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if not pending:
            start = number
        pending.append(line.removesuffix("\\").strip())
        if not line.endswith("\\"):
            instruction, _, arguments = " ".join(pending).partition(" ")
            yield start, instruction.upper(), arguments.strip()
            pending = []
    if pending:
        raise ImageError(f"{_shown(path)}:{start}: the file ends inside a continued line")


def read_dockerfile(path: Path = EXAMPLE_DOCKERFILE) -> Dockerfile:
    """Read the instructions herd's image build follows: FROM python, RUN pip install, WORKDIR, COPY.

    Raises:
        ImageError: on any other instruction, an unpinned or missing pip install, or a FROM that is not python.
    """
    python = ""
    pins: list[str] = []
    workdir = "/"
    copies: list[tuple[str, str]] = []
    for number, instruction, arguments in _instructions(path):
        where = f"{_shown(path)}:{number}"
        words = shlex.split(arguments)
        if instruction == "FROM":
            match = _FROM_PYTHON.fullmatch(words[0]) if words else None
            if not match:
                raise ImageError(f"{where}: FROM {arguments}: herd builds only from a python:<version> image")
            python = match.group(1)
        elif instruction == "RUN":
            if words[:2] not in (["pip", "install"], ["pip3", "install"]):
                raise ImageError(f"{where}: RUN {arguments}: herd's image build runs only `pip install`")
            packages = [w for w in words[2:] if not w.startswith("-")]
            unpinned = [p for p in packages if not _PIN.fullmatch(p)]
            if unpinned:
                raise ImageError(f"{where}: pip install {unpinned[0]}: pin it (name==version)")
            pins += packages
        elif instruction == "WORKDIR" and len(words) == 1:
            workdir = words[0]
        elif instruction == "COPY" and len(words) == 2 and not words[0].startswith("--"):
            copies.append((words[0], words[1]))
        else:
            raise ImageError(
                f"{where}: {instruction} {arguments}: herd's image build follows only FROM python, "
                "RUN pip install, WORKDIR <dir> and COPY <source> <destination>"
            )
    if not python:
        raise ImageError(f"{_shown(path)}: no FROM python:<version> line")
    if not pins:
        raise ImageError(f"{_shown(path)}: no pinned package (name==version) on a RUN pip install line")
    return Dockerfile(path, python, tuple(pins), workdir, tuple(copies))


def _example_reference(spec: Path) -> str:
    try:
        image = (yaml.safe_load(spec.read_text()) or {}).get("image")
    except (OSError, yaml.YAMLError) as e:
        raise ImageError(f"{_shown(spec)}: cannot read its image: {e}") from e
    if not isinstance(image, str) or ":" not in image.rpartition("/")[2]:
        raise ImageError(f"{_shown(spec)}: image: expected a full reference with a tag, got {image!r}")
    return image


# ------------------------------------------------------------------------------------------------ the images
@dataclass(frozen=True)
class Image:
    """One image the node needs: its name, the recipe its archive is named by, and the files its build reads.

    Attributes:
        reference: the full name containerd stores it under, e.g. ``registry.k8s.io/pause:3.10.2``.
        recipe: everything the build depends on, as plain data (files by the hash of their contents); the build
            follows it, and its hash names the archive.
        sources: where the build reads the files the recipe hashes (their place is not part of the recipe).
        cache: the cache directory.
    """

    reference: str
    recipe: Mapping[str, Any]
    sources: Mapping[str, Path]
    cache: Path

    @property
    def name(self) -> str:
        """The repository's last component: ``pause``, ``digits``."""
        return self.reference.rpartition("/")[2].partition(":")[0]

    @property
    def tag(self) -> str:
        return self.reference.rpartition(":")[2]

    @property
    def digest(self) -> str:
        """The recipe's hash."""
        return recipe_hash(self.recipe)

    @property
    def archive(self) -> Path:
        """``<cache>/<name>-<tag>-<recipe hash>.tar``: the OCI-layout archive, there once built."""
        return self.cache / f"{self.name}-{self.tag}-{self.digest}.tar"

    @property
    def built(self) -> bool:
        return self.archive.is_file()


def _file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _ignored(name: str) -> bool:
    return any(Path(name).match(pattern) for pattern in IGNORED)


def _tree_files(root: Path) -> list[Path]:
    """The files COPY takes from ``root`` (a file or a directory), sorted."""
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise ImageError(f"{_shown(root)}: COPY source not found")
    found = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not _ignored(d))
        found += [Path(directory) / f for f in sorted(files) if not _ignored(f)]
    return found


def _tree_hash(root: Path) -> str:
    """The hash of what COPY takes from ``root``: each file's path, executable bit and contents."""
    digest = hashlib.sha256()
    for path in _tree_files(root):
        relative = path.relative_to(root).as_posix() if root.is_dir() else path.name
        digest.update(f"{relative}\0{os.access(path, os.X_OK)}\0{_file_hash(path)}\n".encode())
    return digest.hexdigest()


def _go() -> str:
    return shutil.which("go") or "/usr/local/go/bin/go"


def kubernetes_module() -> tuple[str, Path]:
    """The version and directory of the Kubernetes module scripts/components/kubernetes/go.mod pins.

    Asks ``go list -m`` in that wrapper module; downloads the module when the module cache lacks it.
    """
    env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=readonly"}
    env["PATH"] = f"{env.get('PATH', '')}:/usr/local/go/bin"

    def go(*args: str) -> str:
        try:
            done = subprocess.run(
                [_go(), *args], cwd=KUBERNETES_WRAPPER, env=env, capture_output=True, text=True, check=False
            )
        except FileNotFoundError as e:
            raise ImageError(
                "no Go toolchain (looked in PATH and /usr/local/go/bin): it finds the pause source "
                f"in {KUBERNETES_MODULE}"
            ) from e
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or [f"exit {done.returncode}"]
            raise ImageError(f"go {' '.join(args)} (in {_shown(KUBERNETES_WRAPPER)}): {lines[-1]}")
        return done.stdout.strip()

    version, _, directory = go("list", "-m", "-f", "{{.Version}} {{.Dir}}", KUBERNETES_MODULE).partition(" ")
    if not directory:
        go("mod", "download", f"{KUBERNETES_MODULE}@{version}")
        directory = go("list", "-m", "-f", "{{.Dir}}", KUBERNETES_MODULE)
    return version, Path(directory)


def pause_image(cache: Path, module: tuple[str, Path] | None = None) -> Image:
    """The sandbox image, from the pause source of ``module`` (version, directory; default: the pinned one)."""
    version, directory = module or kubernetes_module()
    source = directory / PAUSE_SOURCE
    if not source.is_file():
        raise ImageError(f"{source}: not found (the pause source of {KUBERNETES_MODULE} {version})")
    recipe = {
        "recipe": RECIPE_VERSION,
        "kind": "pause",
        "reference": PAUSE_IMAGE,
        "pause.c": _file_hash(source),
        "cflags": [*PAUSE_CFLAGS, f"-DVERSION=v{PAUSE_VERSION}-{version}"],
        "config": PAUSE_CONFIG,
    }
    return Image(recipe["reference"], recipe, {"pause.c": source}, cache)


def digits_image(
    cache: Path, context: Path = REPO, dockerfile: Path = EXAMPLE_DOCKERFILE, spec: Path = EXAMPLE_SPEC
) -> Image:
    """The example's image: ``dockerfile`` built in ``context``, named as ``spec`` names it."""
    recipe_of = read_dockerfile(dockerfile)
    if recipe_of.python != SUITE_PYTHON:
        raise ImageError(
            f"{_shown(dockerfile)}: FROM python:{recipe_of.python}, but Debian {SUITE}'s python3 is {SUITE_PYTHON}"
        )
    sources = {destination: context / source for source, destination in recipe_of.copies}
    recipe = {
        "recipe": RECIPE_VERSION,
        "kind": "python-app",
        "reference": _example_reference(spec),
        "base": {
            "recipe": RECIPE_VERSION,
            "suite": SUITE,
            "variant": "minbase",
            "packages": list(DEBIAN_PACKAGES),
            "python": recipe_of.python,
            "pins": list(recipe_of.pins),
        },
        "copies": {destination: _tree_hash(path) for destination, path in sources.items()},
        "config": {"workdir": recipe_of.workdir, "env": list(PYTHON_ENV), "cmd": PYTHON_CMD},
    }
    return Image(recipe["reference"], recipe, sources, cache)


def images(cache: Path | None = None) -> list[Image]:
    """The images the real node needs: the sandbox image and the example's."""
    cache = cache or cache_dir()
    return [pause_image(cache), digits_image(cache)]


def import_args(image: Image | Path, snapshotter: str | None = None) -> list[str]:
    """The arguments of ``ctr images import`` that import an image (or its archive) under its full reference.

    Put ``ctr --address <socket> -n k8s.io images import`` in front (the CRI plugin reads namespace k8s.io). The
    image is unpacked into ``snapshotter`` (default: ctr's, overlayfs; give the CRI plugin's if it differs) and
    pinned for the CRI plugin, so the kubelet's image garbage collection keeps it.
    """
    archive = image.archive if isinstance(image, Image) else image
    args = ["--label", CRI_PINNED_LABEL]
    if snapshotter:
        args += ["--snapshotter", snapshotter]
    return [*args, str(archive)]


# ------------------------------------------------------------------------------------------------ building
class _Steps:
    """Runs a build's commands, their output into one log; a failure raises with the log's last line."""

    def __init__(self, log: Path, reference: str) -> None:
        self.log = log
        self.reference = reference

    def __call__(self, *command: str | Path) -> None:
        argv = [str(c) for c in command]
        with self.log.open("a") as log:
            log.write(f"$ {shlex.join(argv)}\n")
            log.flush()
            try:
                done = subprocess.run(
                    argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False
                )
            except FileNotFoundError as e:
                raise ImageError(f"{self.reference}: {argv[0]} is not installed (scripts/apt-packages.txt)") from e
        if done.returncode != 0:
            lines = self.log.read_text(errors="replace").strip().splitlines()
            raise ImageError(
                f"{self.reference}: {argv[0]} failed (exit {done.returncode}): {lines[-1] if lines else ''} "
                f"(log: {self.log})"
            )


def _configure(run: _Steps, image: str, config: Mapping[str, Any]) -> None:
    """Set an image's runtime configuration with umoci config, from a recipe's ``config``."""
    args = []
    for entry in config.get("entrypoint", []):
        args += ["--config.entrypoint", entry]
    for entry in config.get("cmd", []):
        args += ["--config.cmd", entry]
    for entry in config.get("env", []):
        args += ["--config.env", entry]
    if "user" in config:
        args += ["--config.user", config["user"]]
    if "workdir" in config:
        args += ["--config.workingdir", config["workdir"]]
    run("umoci", "config", "--image", image, *args)


def _build_pause(image: Image, work: Path, run: _Steps) -> Path:
    binary = work / "pause"
    run("gcc", *image.recipe["cflags"], "-o", binary, image.sources["pause.c"])
    run("strip", binary)
    layout, bundle = work / "oci", work / "bundle"
    tagged = f"{layout}:{image.reference}"
    run("umoci", "init", "--layout", layout)
    run("umoci", "new", "--image", tagged)
    # unpack/repack rather than umoci insert: Debian's umoci 0.4.7 leaves insert's layer without its tar footer
    # (umoci#436), which containerd reads as a truncated archive.
    run("umoci", "unpack", "--image", tagged, bundle)
    shutil.copy2(binary, bundle / "rootfs" / "pause")
    run("umoci", "repack", "--history.created_by", "pause.c, as build/pause/Makefile", "--image", tagged, bundle)
    _configure(run, tagged, image.recipe["config"])
    run("umoci", "gc", "--layout", layout)
    return layout


def _debian_mirror() -> str:
    done = subprocess.run(["bash", str(DEBIAN_MIRROR_SCRIPT)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise ImageError(done.stderr.strip() or f"{_shown(DEBIAN_MIRROR_SCRIPT)} failed")
    return done.stdout.strip()


def _clean_rootfs(rootfs: Path) -> None:
    """What an image leaves out: apt's downloads and lists, a machine id, device nodes (the runtime makes /dev)."""
    for pattern in ("var/cache/apt/archives/*.deb", "var/lib/apt/lists/*", "dev/*"):
        for path in rootfs.glob(pattern):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
    (rootfs / "etc" / "machine-id").write_text("")


def _install_scripts(scripts: Path, bin_dir: Path, python: str) -> None:
    """Move pip's console scripts from its --target to /usr/local/bin, started by the image's python."""
    if not scripts.is_dir():
        return
    bin_dir.mkdir(parents=True, exist_ok=True)
    for script in sorted(scripts.iterdir()):
        body = script.read_bytes()
        if body.startswith(b"#!"):
            body = f"#!{python}".encode() + body[body.index(b"\n") :]
        (bin_dir / script.name).write_bytes(body)
        (bin_dir / script.name).chmod(0o755)
    shutil.rmtree(scripts)


def _build_base(base: Mapping[str, Any], layout: Path, reference: str) -> None:
    """The example's first layer, into the OCI layout ``layout`` (tag ``base``): Debian, python3, the pins."""
    host_python = f"{sys.version_info.major}.{sys.version_info.minor}"
    if host_python != base["python"]:
        # pip runs here but installs for the image's interpreter: the wheels must be for the same version.
        raise ImageError(
            f"{reference}: pip here runs on Python {host_python}, the image's python3 is {base['python']}"
        )
    work = layout.with_name(layout.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    run = _Steps(work / "build.log", reference)
    oci, bundle = work / "oci", work / "bundle"
    tagged = f"{oci}:base"
    run("umoci", "init", "--layout", oci)
    run("umoci", "new", "--image", tagged)
    run("umoci", "unpack", "--image", tagged, bundle)
    rootfs = bundle / "rootfs"
    packages = ",".join(base["packages"])
    run(
        "debootstrap",
        f"--variant={base['variant']}",
        f"--include={packages}",
        base["suite"],
        rootfs,
        _debian_mirror(),
    )
    _clean_rootfs(rootfs)
    site = rootfs / "usr" / "local" / "lib" / f"python{base['python']}" / "dist-packages"
    pip = ["pip", "install", "--disable-pip-version-check", "--no-warn-script-location", "--only-binary=:all:"]
    run(sys.executable, "-m", *pip, "--target", site, *base["pins"])
    _install_scripts(site / "bin", rootfs / "usr" / "local" / "bin", "/usr/bin/python3")
    history = (
        f"debootstrap --variant={base['variant']} --include={packages} {base['suite']}; pip install "
        + " ".join(base["pins"])
    )
    run("umoci", "repack", "--history.created_by", history, "--image", tagged, bundle)
    run("umoci", "gc", "--layout", oci)
    oci.rename(layout)
    shutil.rmtree(work)


def _base_layout(image: Image) -> Path:
    return image.cache / f"{image.name}-base-{recipe_hash(image.recipe['base'])}"


def _copy_layout(source: Path, target: Path) -> None:
    """A copy of an OCI layout whose blobs are hard links (umoci adds blobs, never rewrites one)."""
    shutil.copytree(source / "blobs", target / "blobs", copy_function=os.link)
    for name in ("oci-layout", "index.json"):
        shutil.copy2(source / name, target / name)


def _build_python_app(image: Image, work: Path, run: _Steps) -> Path:
    base = _base_layout(image)
    if not (base / "index.json").is_file():
        _build_base(image.recipe["base"], base, image.reference)
    layout, bundle = work / "oci", work / "bundle"
    _copy_layout(base, layout)
    run("umoci", "unpack", "--image", f"{layout}:base", bundle)
    rootfs = bundle / "rootfs"
    for destination, source in image.sources.items():
        target = rootfs / destination.lstrip("/")
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns(*IGNORED), dirs_exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / source.name if destination.endswith("/") else target)
    (rootfs / image.recipe["config"]["workdir"].lstrip("/")).mkdir(parents=True, exist_ok=True)
    copies = "; ".join(f"COPY {_shown(s)} {d}" for d, s in image.sources.items())
    tagged = f"{layout}:{image.reference}"
    run("umoci", "repack", "--history.created_by", copies, "--image", tagged, bundle)
    run("umoci", "rm", "--image", f"{layout}:base")
    _configure(run, tagged, image.recipe["config"])
    run("umoci", "gc", "--layout", layout)
    return layout


_BUILDERS: dict[str, Callable[[Image, Path, _Steps], Path]] = {
    "pause": _build_pause,
    "python-app": _build_python_app,
}


def _root_owned(member: tarfile.TarInfo) -> tarfile.TarInfo:
    member.uid = member.gid = 0
    member.uname = member.gname = ""
    return member


def _write_archive(layout: Path, archive: Path) -> None:
    """Archive an OCI layout as ``ctr images import`` reads it: oci-layout, index.json, blobs/ at the top."""
    partial = archive.with_name(archive.name + ".partial")
    with tarfile.open(partial, "w") as tar:
        for entry in ("oci-layout", "index.json", "blobs"):
            tar.add(layout / entry, arcname=entry, filter=_root_owned)
    partial.rename(archive)


def _build(image: Image) -> None:
    work = image.archive.with_suffix(".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    layout = _BUILDERS[image.recipe["kind"]](image, work, _Steps(work / "build.log", image.reference))
    _write_archive(layout, image.archive)
    shutil.rmtree(work)


@contextmanager
def _locked(cache: Path) -> Iterator[None]:
    """One build at a time per cache (a second waits, then finds the archives built)."""
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def ensure(
    cache: Path | None = None, log: Callable[[str], None] = lambda line: print(line, file=sys.stderr)
) -> list[Image]:
    """Build the images that are not cached yet, one line per image to ``log``; every image, built."""
    wanted = images(cache)
    missing = [image.reference for image in wanted if not image.built]
    if missing and os.geteuid() != 0:
        raise ImageError(
            f"building {', '.join(missing)} needs root (debootstrap, umoci unpack): run scripts/images.sh as root"
        )
    for image in wanted:
        if image.built:
            log(f"{image.reference}: up to date ({image.archive})")
            continue
        with _locked(image.cache):
            if image.built:  # another run built it while this one waited
                log(f"{image.reference}: up to date ({image.archive})")
                continue
            started = time.monotonic()
            _build(image)
        size = image.archive.stat().st_size / 1e6
        log(f"{image.reference}: built in {time.monotonic() - started:.0f} s ({image.archive}, {size:.1f} MB)")
    return wanted


def main(argv: list[str] | None = None) -> int:
    """``python -m herd_ops.images``: build what is missing, then print the cache directory."""
    parser = argparse.ArgumentParser(prog="scripts/images.sh", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--dir",
        action="store_true",
        help="print the cache directory without building; exit 1 if an image is missing",
    )
    mode.add_argument(
        "--archives", action="store_true", help="build what is missing, then print each reference and its archive"
    )
    options = parser.parse_args(argv)
    try:
        if options.dir:
            missing = [image for image in images() if not image.built]
            for image in missing:
                print(
                    f"images: {image.reference} is not built ({image.archive}); run scripts/images.sh",
                    file=sys.stderr,
                )
            if missing:
                return 1
            print(cache_dir())
            return 0
        built = ensure()
    except HerdError as e:
        if os.environ.get("HERD_DEBUG"):
            raise
        print(f"images: error: {e}", file=sys.stderr)
        return 1
    if options.archives:
        for image in built:
            print(f"{image.reference}\t{image.archive}")
    else:
        print(cache_dir())
    return 0


if __name__ == "__main__":
    sys.exit(main())
