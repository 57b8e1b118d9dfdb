"""The container images herd's nodes need, built here without Docker or a registry, and cached.

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

Those two are ``images()``, what the local cluster's real node imports. ``kubeadm_images()`` are what ``kubeadm
init`` runs as static pods, for nodes whose containerd can pull nothing either (the playbooks' test hosts): the
pause image and

- ``registry.k8s.io/kube-apiserver``, ``kube-controller-manager`` and ``kube-scheduler:<KUBERNETES_VERSION>``, the
  binaries scripts/components.sh builds from the Kubernetes release scripts/components/kubernetes/go.mod pins;
- ``registry.k8s.io/etcd:<ETCD_IMAGE_TAG>``: the etcd server scripts/components/etcd/go.mod pins, tagged
  ``<version>-0`` as kubeadm tags etcd images. kubeadm's own default is older (``3.6.8-0`` for 1.36): set
  ClusterConfiguration ``etcd.local.imageTag`` to ETCD_IMAGE_TAG.

Each is laid out as upstream's: the binary at ``/usr/local/bin/<name>`` (kubeadm's manifests run ``command:
[kube-apiserver, ...]``, ``[etcd, ...]``, found through the image's PATH), as root, on a root like distroless
static's (upstream's base): ``/etc/passwd`` and ``/etc/group`` with root, nobody and nonroot (65532),
``/etc/nsswitch.conf``, a sticky ``/tmp``, ``/root`` and ``/home/nonroot``; and for etcd, as etcd's Dockerfile,
``/var/etcd`` and ``/var/lib/etcd`` (its working directory), ``etcd`` the command. Not there: CA certificates
(kubeadm mounts the host's ``/etc/ssl/certs`` into the API server and controller manager; the scheduler and etcd
need none), tzdata, os-release and dpkg's status files; upstream's ``/go-runner`` entrypoint (kube-log-runner,
not built here: the entrypoint is the binary itself, and a manifest's command replaces either), the API server's
``cap_net_bind_service`` file capability (it matters only to a non-root API server on a port below 1024), and
etcd's ``etcdctl``/``etcdutl`` and registry.k8s.io/etcd's ``migrate`` (not built). Each is two layers, the root
and the binary; the recipe holds the binary's hash, and the build refuses a binary whose ``--version`` is not the
pinned release. kubeadm also deploys CoreDNS and kube-proxy: they are not built here (CoreDNS would be a long cold
build from its module, kube-proxy needs an iptables image); the test hosts skip those addon phases.

Each archive's index.json names its image by the full reference (``org.opencontainers.image.ref.name``), which
containerd 2.2's ``ctr images import`` keeps as the image's name (it prefixes only a bare tag, and looks at
``io.containerd.image.name`` first, which umoci does not write). ``import_args`` gives the arguments of
``ctr images import`` that import one into a kubelet's containerd::

    ctr --address <socket> -n k8s.io images import --label io.cri-containerd.pinned=pinned <archive>

The label pins the image in the CRI plugin, so the kubelet's image garbage collection never removes what nothing
could pull again. The import unpacks into ctr's default snapshotter (overlayfs, the CRI plugin's default too) for
this machine's platform; each archive holds that one platform.

>>> from herd_local import images
>>> for image in images.ensure():                                             # doctest: +SKIP
...     subprocess.run(["ctr", "-n", "k8s.io", "images", "import", *images.import_args(image)], check=True)
>>> [i.reference for i in images.ensure(wanted=images.kubeadm_images())]     # doctest: +SKIP
['registry.k8s.io/pause:3.10.2', 'registry.k8s.io/kube-apiserver:v1.36.3', ..., 'registry.k8s.io/etcd:3.6.16-0']
"""

from __future__ import annotations

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
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from herd_local.errors import ImageError, LocalClusterError
from herd_local.paths import COMPONENT_WRAPPERS, DEBIAN_MIRROR_SCRIPT, EXAMPLES, REPO

__all__ = [
    "CONTROL_PLANE",
    "ETCD_IMAGE",
    "ETCD_IMAGE_TAG",
    "ETCD_VERSION",
    "KUBERNETES_VERSION",
    "PAUSE_IMAGE",
    "PAUSE_VERSION",
    "Dockerfile",
    "Image",
    "ImageError",
    "all_images",
    "cache_dir",
    "control_plane_image",
    "digits_image",
    "ensure",
    "images",
    "import_args",
    "kubeadm_images",
    "kubernetes_module",
    "pause_image",
    "read_dockerfile",
    "recipe_hash",
]

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
KUBERNETES_WRAPPER = COMPONENT_WRAPPERS / "kubernetes"
PAUSE_SOURCE = Path("build/pause/linux/pause.c")  # inside the Kubernetes module
# build/pause/Makefile's CFLAGS (its VERSION is v$(TAG)-$(REV), REV the Kubernetes tag); it strips the binary.
PAUSE_CFLAGS = ("-Os", "-Wall", "-Werror", "-static")
# build/pause/Dockerfile: FROM scratch, the binary at /pause, USER 65535:65535, ENTRYPOINT ["/pause"].
PAUSE_CONFIG = {"user": "65535:65535", "entrypoint": ["/pause"]}

EXAMPLE_DOCKERFILE = EXAMPLES / "Dockerfile"
EXAMPLE_SPEC = EXAMPLES / "digits-sweep.yaml"
SUITE = "bookworm"
SUITE_PYTHON = "3.11"  # bookworm's python3; the Dockerfile's FROM must name the same minor version
# python-is-python3: the example's command is `python ...`, as in the python image.
DEBIAN_PACKAGES = ("python3", "python-is-python3")
# The PATH Debian's images and distroless set.
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What the python image sets that a Pod may rely on: its PATH (pip's scripts in /usr/local/bin), a UTF-8 locale,
# and python3 as the command when a Pod gives none.
PYTHON_ENV = (PATH_ENV, "LANG=C.UTF-8")
PYTHON_CMD = ["python3"]
# Left out of COPY (and of its hash): what running the example here leaves behind.
IGNORED = ("__pycache__", "*.pyc")

# The control plane kubeadm init runs as static pods, from the binaries scripts/components.sh builds.
ETCD_MODULE = "go.etcd.io/etcd/server/v3"
ETCD_WRAPPER = COMPONENT_WRAPPERS / "etcd"
CONTROL_PLANE = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
IMAGE_REPOSITORY = "registry.k8s.io"  # kubeadm's default imageRepository
# distroless static's users and groups (root, nobody, nonroot) and its name service order; kubeadm's manifests run
# the control plane as root.
STATIC_ROOT_FILES = {
    "etc/passwd": (
        "root:x:0:0:root:/root:/sbin/nologin\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
        "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
    ),
    "etc/group": "root:x:0:\ntty:x:5:\nstaff:x:50:\nnobody:x:65534:\nnonroot:x:65532:\n",
    "etc/nsswitch.conf": "hosts: files dns\n",
}
# directory: (mode, owner uid and gid)
STATIC_ROOT_DIRS = {"tmp": (0o1777, 0), "root": (0o700, 0), "home/nonroot": (0o700, 65532)}
ROOT_USER = "0:0"

CRI_PINNED_LABEL = "io.cri-containerd.pinned=pinned"
REF_NAME = "org.opencontainers.image.ref.name"


def cache_dir() -> Path:
    """Where the archives are cached: ``$HERD_IMAGE_CACHE``, else ``/var/cache/herd/images``."""
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE)


def recipe_hash(recipe: Mapping[str, Any]) -> str:
    """The short hash that names a recipe's build (12 hex digits of the sha256 of its canonical JSON)."""
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _required_version(wrapper: Path, module: str) -> str:
    """The version a wrapper module's go.mod requires of ``module``, read as scripts/components.sh reads it."""
    gomod = wrapper / "go.mod"
    try:
        text = gomod.read_text()
    except OSError as e:
        raise ImageError(f"{_shown(gomod)}: cannot read: {e.strerror}") from e
    m = re.search(rf"^\s*(?:require\s+)?{re.escape(module)}\s+(v\S+)", text, re.M)
    if not m:
        raise ImageError(f"{_shown(gomod)}: does not require {module}")
    return m.group(1)


KUBERNETES_VERSION = _required_version(KUBERNETES_WRAPPER, KUBERNETES_MODULE)  # v1.36.3: the kube-* images' tag
ETCD_VERSION = _required_version(ETCD_WRAPPER, ETCD_MODULE)  # v3.6.16
# kubeadm's etcd tags are <version>-<image revision> (its default for 1.36 is 3.6.8-0); herd's etcd is the pinned
# release, so the playbooks set ClusterConfiguration etcd.local.imageTag to this.
ETCD_IMAGE_TAG = f"{ETCD_VERSION.removeprefix('v')}-0"
ETCD_IMAGE = f"{IMAGE_REPOSITORY}/etcd:{ETCD_IMAGE_TAG}"


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


_BINARY_HASHES: dict[tuple[Path, int, int], str] = {}


def _binary_hash(path: Path) -> str:
    """A large binary's hash, computed once per process for each (path, size, modification time)."""
    stat = path.stat()
    key = (path, stat.st_size, stat.st_mtime_ns)
    if key not in _BINARY_HASHES:
        _BINARY_HASHES[key] = _file_hash(path)
    return _BINARY_HASHES[key]


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


def _components_bin() -> Path:
    from herd_local.components import components_dir

    try:
        return components_dir()
    except LocalClusterError as e:
        raise ImageError(f"the control-plane images are built from the components: {e}") from e


def control_plane_image(cache: Path, name: str, bin_dir: Path | None = None) -> Image:
    """The image kubeadm's static pod ``name`` runs (a CONTROL_PLANE name or ``etcd``), from the built binary.

    The binary is ``bin_dir/<name>`` (default: scripts/components.sh's bin directory); the recipe holds its hash,
    so a rebuilt binary names a new archive.
    """
    if name == "etcd":
        reference, version = ETCD_IMAGE, ETCD_VERSION.removeprefix("v")
        # etcd's Dockerfile: no entrypoint, etcd as the command, in its data directory.
        config: dict[str, Any] = {"cmd": ["/usr/local/bin/etcd"], "workdir": "/var/lib/etcd"}
        dirs = ["var/etcd", "var/lib/etcd"]
    elif name in CONTROL_PLANE:
        reference, version = f"{IMAGE_REPOSITORY}/{name}:{KUBERNETES_VERSION}", KUBERNETES_VERSION
        # build/server-image's entrypoint is /go-runner (kube-log-runner), which is not built here: the binary
        # itself instead. kubeadm's manifests give a command ([kube-apiserver, ...]), which replaces either.
        config = {"entrypoint": [f"/usr/local/bin/{name}"]}
        dirs = []
    else:
        raise ImageError(f"{name}: not a control-plane image (one of {', '.join([*CONTROL_PLANE, 'etcd'])})")
    binary = (bin_dir or _components_bin()) / name
    if not binary.is_file():
        raise ImageError(f"{binary}: not found (scripts/components.sh builds it)")
    binary = binary.resolve()
    recipe = {
        "recipe": RECIPE_VERSION,
        "kind": "static-binary",
        "reference": reference,
        "binary": name,
        "version": version,  # what `<binary> --version` must say
        "sha256": _binary_hash(binary),
        "root": {"files": STATIC_ROOT_FILES, "dirs": {**STATIC_ROOT_DIRS, **{d: (0o755, 0) for d in dirs}}},
        # The command name resolves through PATH, as kubeadm's manifests need; root, as they run.
        "config": {**config, "env": [PATH_ENV], "user": ROOT_USER},
    }
    return Image(reference, recipe, {"binary": binary}, cache)


def kubeadm_images(cache: Path | None = None, bin_dir: Path | None = None) -> list[Image]:
    """The images ``kubeadm init`` deploys, but for its addons (CoreDNS, kube-proxy): the sandbox image, etcd
    (tagged ETCD_IMAGE_TAG), kube-apiserver, kube-controller-manager and kube-scheduler."""
    cache = cache or cache_dir()
    bin_dir = bin_dir or _components_bin()
    return [pause_image(cache), *(control_plane_image(cache, n, bin_dir) for n in (*CONTROL_PLANE, "etcd"))]


def all_images(cache: Path | None = None) -> list[Image]:
    """images() and kubeadm_images(), each once."""
    cache = cache or cache_dir()
    found = {image.reference: image for image in [*images(cache), *kubeadm_images(cache)]}
    return list(found.values())


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


def _new_bundle(run: _Steps, tagged: str, layout: Path, bundle: Path) -> Path:
    """An empty image ``tagged`` in a new layout, unpacked into ``bundle``; returns its rootfs.

    unpack/repack rather than umoci insert: Debian's umoci 0.4.7 leaves insert's layer without its tar footer
    (umoci#436), which containerd reads as a truncated archive."""
    run("umoci", "init", "--layout", layout)
    run("umoci", "new", "--image", tagged)
    run("umoci", "unpack", "--image", tagged, bundle)
    return bundle / "rootfs"


def _build_pause(image: Image, work: Path, run: _Steps) -> Path:
    binary = work / "pause"
    run("gcc", *image.recipe["cflags"], "-o", binary, image.sources["pause.c"])
    run("strip", binary)
    layout, bundle = work / "oci", work / "bundle"
    tagged = f"{layout}:{image.reference}"
    shutil.copy2(binary, _new_bundle(run, tagged, layout, bundle) / "pause")
    run("umoci", "repack", "--history.created_by", "pause.c, as build/pause/Makefile", "--image", tagged, bundle)
    _configure(run, tagged, image.recipe["config"])
    run("umoci", "gc", "--layout", layout)
    return layout


def _write_static_root(rootfs: Path, root: Mapping[str, Any]) -> None:
    for directory, (mode, owner) in root["dirs"].items():
        path = rootfs / directory
        path.mkdir(parents=True, exist_ok=True)
        os.chown(path, owner, owner)
        path.chmod(mode)
    for name, text in root["files"].items():
        path = rootfs / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(0o644)


def _check_version(image: Image) -> None:
    """The binary must be the pinned release: its ``--version`` names the recipe's version."""
    binary, version = image.sources["binary"], image.recipe["version"]
    try:
        done = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60, check=False)
    except OSError as e:
        raise ImageError(f"{image.reference}: cannot run {binary}: {e}") from e
    said = done.stdout.strip()
    if done.returncode != 0 or not re.search(rf"(?<![\w.]){re.escape(version)}(?![\w.])", said):
        first = said.splitlines()[0] if said else done.stderr.strip()
        raise ImageError(
            f"{image.reference}: {binary} --version says {first!r}, not {version} "
            "(scripts/components.sh builds the pinned release)"
        )


def _build_static_binary(image: Image, work: Path, run: _Steps) -> Path:
    """A root like distroless static's (one layer), then the binary in /usr/local/bin (a second), as upstream's."""
    _check_version(image)
    name = image.recipe["binary"]
    layout, bundle = work / "oci", work / "bundle"
    tagged = f"{layout}:{image.reference}"
    rootfs = _new_bundle(run, tagged, layout, bundle)
    _write_static_root(rootfs, image.recipe["root"])
    root = "a minimal root as distroless static's: users root, nobody, nonroot; /tmp"
    # --refresh-bundle: the next repack's layer holds only what changed since (the binary).
    run("umoci", "repack", "--refresh-bundle", "--history.created_by", root, "--image", tagged, bundle)
    target = rootfs / "usr" / "local" / "bin" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(image.sources["binary"], target)
    target.chmod(0o755)
    copied = f"COPY {name} /usr/local/bin/{name} ({name} {image.recipe['version']}, scripts/components.sh)"
    run("umoci", "repack", "--history.created_by", copied, "--image", tagged, bundle)
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
    rootfs = _new_bundle(run, tagged, oci, bundle)
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
    "static-binary": _build_static_binary,
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
    cache: Path | None = None,
    log: Callable[[str], None] = lambda line: print(line, file=sys.stderr),
    wanted: Sequence[Image] | None = None,
) -> list[Image]:
    """Build the images that are not cached yet, one line per image to ``log``; every image, built.

    Args:
        cache: the cache directory (default: cache_dir()).
        log: where each image's line goes.
        wanted: the images (default: ``images(cache)``, the local cluster's node's; ``kubeadm_images()`` for a
            kubeadm control plane).
    """
    wanted = list(images(cache) if wanted is None else wanted)
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
