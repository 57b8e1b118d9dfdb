"""Build the test hosts' apt repositories — real Kubernetes and containerd packages, NVIDIA TEST DOUBLES — and
serve them signed, laid out as upstream's.

The roles install from upstream repositories: pkgs.k8s.io (kubeadm, kubelet, kubectl), Docker's Debian repository
(containerd.io: containerd 2.x and runc), NVIDIA's CUDA and libnvidia-container repositories. None is reachable
from here, so this module builds repositories with the same layout, package names and versions, signs them with a
GPG key generated for this test session and serves them over HTTP on the test network. The inventory then points
only the roles' repository and key URLs here (:func:`repository_vars`); everything else — key download, sources
file, which release's repository, apt update, pinned install, hold — runs the real way.

What is in them:

- **Kubernetes, real** (``k8s/core:/stable:/v<minor>/deb``, flat like pkgs.k8s.io): kubeadm, kubelet, kubectl and
  kubernetes-cni with the upstream binaries ``scripts/components.sh`` builds from their Go modules, laid out as
  kubernetes/release's package specs lay them out (files, units, ``/etc/default/kubelet``, Depends; see
  :func:`kubernetes_packages`).
- **containerd.io, real** (``docker/linux/debian``, Docker's layout: ``dists/<codename>/stable/binary-amd64``, one
  package per Debian release in Docker's version style): containerd, its runc shim, ctr and runc from the same
  builds, with containerd's own systemd unit (:func:`containerd_io`).
- **NVIDIA, TEST DOUBLES** (no GPU here): the driver's ``nvidia-smi`` and the container toolkit, small scripts
  beside this module that record how they are called. NVIDIA's CUDA repository is one per Debian release (debian12,
  debian13, each with its own key file name and driver pin, read from the nvidia role's defaults), so the doubles
  are too. The toolkit's ``nvidia-container-runtime`` hands every call on to the real runc, as the real one does
  after adding its hook, so containerd's ``nvidia`` runtime runs containers.

The versions are the builds' own pins (the wrapper modules' go.mod under scripts/components/). The signing key is
one Debian 13's apt accepts: trixie's apt verifies with sqv (Sequoia), whose policy refuses SHA-1 in signatures and
key bindings and DSA1024 keys. So the key is ed25519, and its self-signatures and the repositories' signatures are
made with SHA-512, named explicitly rather than left to gpg's defaults (which vary with its version and
configuration). test_apt_trust.py checks the packets, and apt on booted hosts of both releases.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
NVIDIA_DEFAULTS = REPO / "playbooks" / "roles" / "nvidia" / "defaults" / "main.yml"
COMPONENT_MODULES = REPO / "scripts" / "components"
# gpg's own names for what the key is made with (see Signer).
KEY_ALGO = "ed25519"
DIGEST = "SHA512"
MAINTAINER = "herd tests <tests@herd.invalid>"
COMMON = "herd-test-doubles-common"
# The Debian releases Docker's repository is built for, with their version numbers (Docker's version suffix): the
# releases the test hosts run (tests/playbooks/testbed.py's RELEASES; a test holds the two together).
DEBIAN_RELEASES = {"bookworm": "12", "trixie": "13"}
# Where each repository lives under the served root.
DOCKER_DIR = "docker/linux/debian"
CUDA_DIR = "nvidia/cuda"
TOOLKIT_DIR = "nvidia/libnvidia-container/stable/deb/amd64"

# The binaries the real packages carry, all from scripts/components.sh's bin directory.
KUBERNETES_BINARIES = ("kubeadm", "kubelet", "kubectl")
CNI_PLUGINS = ("bridge", "host-local", "loopback")
CONTAINERD_BINARIES = ("containerd", "containerd-shim-runc-v2", "ctr", "runc")

# kubernetes/release's kubelet.service (cmd/krel/templates/latest/kubelet), installed by the kubelet package.
KUBELET_SERVICE = """\
[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target
"""

# kubernetes/release's 10-kubeadm.conf, installed by the kubeadm package; its Debian packages read
# /etc/default/kubelet (the RPMs /etc/sysconfig/kubelet: kubernetes/release#3279 fixed the .debs to the Debian
# path).
KUBEADM_DROPIN = """\
# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf \
--kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
# This is a file that "kubeadm init" and "kubeadm join" generates at runtime, populating the KUBELET_KUBEADM_ARGS \
variable dynamically
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
# This is a file that the user can use for overrides of the kubelet args as a last resort. Preferably, the user \
should use
# the .NodeRegistration.KubeletExtraArgs object in the configuration files instead. KUBELET_EXTRA_ARGS should be \
sourced from this file.
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"""

# kubernetes/release's kubelet.env, the kubelet package's /etc/default/kubelet (a conffile).
KUBELET_ENV = "KUBELET_EXTRA_ARGS=\n"

# containerd's own unit (containerd.service at the root of the pinned containerd module, without its licence
# header), with ExecStart where the package puts the binary, as Docker's package has it. test_aptrepo.py compares
# it with the module's file.
CONTAINERD_SERVICE = """\
[Unit]
Description=containerd container runtime
Documentation=https://containerd.io
After=network.target dbus.service

[Service]
ExecStartPre=-/sbin/modprobe overlay
ExecStart=/usr/bin/containerd

Type=notify
Delegate=yes
KillMode=process
Restart=always
RestartSec=5

# Having non-zero Limit*s causes performance problems due to accounting overhead
# in the kernel. We recommend using cgroups to do container-local accounting.
LimitNPROC=infinity
LimitCORE=infinity

# Comment TasksMax if your systemd version does not supports it.
# Only systemd 226 and above support this version.
TasksMax=infinity
OOMScoreAdjust=-999

[Install]
WantedBy=multi-user.target
"""

# Docker's containerd.io ships this /etc/containerd/config.toml (docker/containerd-packaging's
# common/containerd.toml, without its comments): the CRI plugin off, since Docker does not need it. A node for
# Kubernetes must replace it — the containerd role does.
CONTAINERD_IO_CONFIG = 'disabled_plugins = ["cri"]\n'

# containerd.io's maintainer scripts as debhelper writes them for Docker's package (dh_installsystemd, with
# Docker's restart rather than try-restart after an upgrade), in plain systemctl.
CONTAINERD_IO_POSTINST = """\
#!/bin/sh
set -e
case "$1" in configure|abort-upgrade|abort-deconfigure|abort-remove)
    systemctl enable containerd.service >/dev/null 2>&1 || true
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
        systemctl restart containerd.service >/dev/null || true
    fi
esac
"""
CONTAINERD_IO_PRERM = """\
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
    systemctl stop containerd.service >/dev/null || true
fi
"""
CONTAINERD_IO_POSTRM = """\
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then
    systemctl --system daemon-reload >/dev/null || true
fi
if [ "$1" = purge ]; then
    systemctl disable containerd.service >/dev/null 2>&1 || true
fi
"""

# A file's content: text, bytes, or a file to copy (a built binary).
Content = str | bytes | Path


@dataclass
class Package:
    """One .deb. ``files`` maps each installed path to (content, mode); empty directories are kept, as upstream's
    packages keep them, with a placeholder file in them (dpkg-deb keeps no empty directory)."""

    name: str
    version: str
    description: str
    files: dict[str, tuple[Content, int]] = field(default_factory=dict)
    depends: tuple[str, ...] = (COMMON,)
    architecture: str = "all"
    section: str = "admin"
    fields: dict[str, str] = field(default_factory=dict)  # further control fields: Provides, Conflicts, ...
    conffiles: tuple[str, ...] = ()
    scripts: dict[str, str] = field(default_factory=dict)  # maintainer scripts: postinst, prerm, postrm

    @property
    def filename(self) -> str:
        return f"{self.name}_{self.version}_{self.architecture}.deb"


class ComponentsMissing(RuntimeError):
    """The built upstream binaries the real packages carry are not there (scripts/components.sh builds them)."""


def component_binaries(names: tuple[str, ...]) -> dict[str, Path]:
    """The built upstream binaries ``names``, from scripts/components.sh's bin directory (``$HERD_COMPONENTS_BIN``
    overrides it, as for the local real cluster).

    Raises:
        ComponentsMissing: one line naming what is missing and what builds it.
    """
    from herd_local.components import components_dir
    from herd_local.errors import LocalClusterError

    try:
        bin_dir = components_dir()
    except LocalClusterError as e:
        raise ComponentsMissing(f"the real Kubernetes and containerd packages need the components: {e}") from e
    found = {name: bin_dir / name for name in names}
    if missing := [name for name, path in found.items() if not path.is_file()]:
        raise ComponentsMissing(f"{', '.join(missing)} not found in {bin_dir}: run scripts/components.sh")
    return found


def _pin(component: str, module: str) -> str:
    """The release of ``module`` that scripts/components/<component>/go.mod pins, without the leading v."""
    text = (COMPONENT_MODULES / component / "go.mod").read_text()
    m = re.search(rf"^\s*(?:require\s+)?{re.escape(module)} v(\S+)", text, re.M)
    if not m:
        raise ValueError(f"scripts/components/{component}/go.mod does not require {module}")
    return m.group(1)


def nvidia_driver_releases() -> dict[str, dict[str, str]]:
    """The nvidia role's CUDA repository per Debian release (repo directory, key file name, driver pin): the one
    owner of those facts; the doubles are built to match."""
    return yaml.safe_load(NVIDIA_DEFAULTS.read_text())["nvidia_driver_releases"]


@dataclass
class Versions:
    """The packages' versions: the real ones are the components' pins (their wrapper modules' go.mod), with
    upstream's package revisions; the doubles claim the versions the roles pin (the NVIDIA driver's per release are
    the nvidia role's own defaults). The inventory pins the roles to the same ones."""

    kubernetes: str = field(default_factory=lambda: _pin("kubernetes", "k8s.io/kubernetes"))
    kubernetes_revision: str = "1.1"
    cni: str = field(default_factory=lambda: _pin("cni", "github.com/containernetworking/plugins"))
    containerd: str = field(default_factory=lambda: _pin("containerd", "github.com/containerd/containerd/v2"))
    # Docker's package revision: <version>-<revision>~debian.<number>~<codename>.
    containerd_revision: str = "1"
    runc: str = field(default_factory=lambda: _pin("runc", "github.com/opencontainers/runc"))
    nvidia_drivers: dict[str, dict[str, str]] = field(default_factory=nvidia_driver_releases)
    nvidia_toolkit: str = "1.17.8-1"

    @property
    def kubernetes_minor(self) -> str:
        return ".".join(self.kubernetes.split(".")[:2])

    def containerd_io(self, codename: str) -> str:
        """containerd.io's version in Docker's repository of one Debian release (2.2.9-1~debian.12~bookworm)."""
        return f"{self.containerd}-{self.containerd_revision}~debian.{DEBIAN_RELEASES[codename]}~{codename}"


def kubernetes_dir(v: Versions) -> str:
    """The Kubernetes repository's directory: one minor per repository, as pkgs.k8s.io."""
    return f"k8s/core:/stable:/v{v.kubernetes_minor}/deb"


def repository_vars(repo_url: str, versions: Versions | None = None) -> dict[str, str]:
    """Every inventory variable that points the roles at these repositories, served at ``repo_url``: repository and
    key URLs only (the roles choose the release's repository and pin the versions themselves)."""
    v = versions or Versions()
    k8s = f"{repo_url}/{kubernetes_dir(v)}/"
    toolkit = f"{repo_url}/{TOOLKIT_DIR}/"
    docker = f"{repo_url}/{DOCKER_DIR}"
    return {
        "kubernetes_apt_repo_url": k8s,
        "kubernetes_apt_key_url": f"{k8s}Release.key",
        "containerd_apt_repo_url": docker,
        "containerd_apt_key_url": f"{docker}/gpg",
        # Only the base moves: the nvidia role picks the release's CUDA repository, key and driver pin itself.
        "nvidia_driver_repo_base": f"{repo_url}/{CUDA_DIR}/",
        "nvidia_toolkit_repo_url": toolkit,
        "nvidia_toolkit_key_url": f"{toolkit}Release.key",
    }


def _script(name: str, version: str) -> tuple[str, int]:
    return (HERE / name).read_text(encoding="utf-8").replace("@VERSION@", version), 0o755


def kubernetes_packages(v: Versions, binaries: dict[str, Path]) -> list[Package]:
    """kubeadm, kubelet, kubectl and kubernetes-cni as pkgs.k8s.io's (kubernetes/release's krel templates,
    cmd/krel/templates/latest/<package>/<package>.spec and metadata.yaml), with the upstream binaries built here.

    Depends as upstream's for this release: kubeadm has none from 1.32 on (no kubelet, kubectl or cri-tools:
    kubeadm talks to the runtime through the CRI itself, so no crictl and no cri-tools package); kubectl and
    kubernetes-cni none; kubelet ``iptables (>= 1.4.21), kubernetes-cni (>= 1.2.0), mount, util-linux`` (its spec
    until September 2026, when iptables became a Recommends: after v1.36.3 was packaged). kubernetes-cni holds the
    CNI plugins the tests build (bridge, host-local, loopback, v1.10.0); upstream's package carries every plugin of
    the release.
    """
    k8s = f"{v.kubernetes}-{v.kubernetes_revision}"
    homepage = {"Homepage": "https://kubernetes.io"}
    built = " Built for herd's tests from the upstream release's Go module (scripts/components.sh)."
    return [
        Package(
            "kubeadm",
            k8s,
            f"Command-line utility for administering a Kubernetes cluster\n{built}",
            {
                "/usr/bin/kubeadm": (binaries["kubeadm"], 0o755),
                "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf": (KUBEADM_DROPIN, 0o644),
            },
            depends=(),
            architecture="amd64",
            fields=homepage,
        ),
        Package(
            "kubelet",
            k8s,
            f"Node agent for Kubernetes clusters\n{built}",
            {
                "/usr/bin/kubelet": (binaries["kubelet"], 0o755),
                "/usr/lib/systemd/system/kubelet.service": (KUBELET_SERVICE, 0o644),
                "/etc/default/kubelet": (KUBELET_ENV, 0o644),
                "/var/lib/kubelet/.kubelet-keep": ("", 0o644),
                "/etc/kubernetes/manifests/.kubelet-keep": ("", 0o644),
            },
            depends=("iptables (>= 1.4.21)", "kubernetes-cni (>= 1.2.0)", "mount", "util-linux"),
            architecture="amd64",
            section="net",
            fields=homepage,
            conffiles=("/etc/default/kubelet",),
        ),
        Package(
            "kubectl",
            k8s,
            f"Command-line utility for interacting with a Kubernetes cluster\n{built}",
            {"/usr/bin/kubectl": (binaries["kubectl"], 0o755)},
            depends=(),
            architecture="amd64",
            fields=homepage,
        ),
        Package(
            "kubernetes-cni",
            f"{v.cni}-{v.kubernetes_revision}",
            "Binaries required to provision kubernetes container networking\n"
            " The CNI plugins herd's tests build (bridge, host-local, loopback) from the upstream release's Go"
            " module;\n upstream's package carries every plugin of the release.",
            {
                **{f"/opt/cni/bin/{plugin}": (binaries[plugin], 0o755) for plugin in CNI_PLUGINS},
                "/etc/cni/net.d/.kubernetes-cni-keep": ("", 0o644),
            },
            depends=(),
            architecture="amd64",
            section="net",
            fields=homepage,
        ),
    ]


def containerd_io(v: Versions, codename: str, binaries: dict[str, Path]) -> Package:
    """containerd.io as Docker's repository has it for one Debian release (docker/containerd-packaging's
    debian/control and rules): containerd, its runc shim, ctr and runc in /usr/bin, containerd's own unit, Docker's
    config.toml (CRI off), enabled and started on install.

    Depends as Docker's package (what debhelper's shlibs give its cgo-built runc and containerd):
    ``libc6 (>= 2.34), libseccomp2 (>= 2.5.0)``; it Provides, Conflicts with and Replaces Debian's containerd and
    runc, which it ships itself.
    """
    return Package(
        "containerd.io",
        v.containerd_io(codename),
        "An open and reliable container runtime\n"
        " Built for herd's tests from the upstream releases' Go modules (scripts/components.sh).",
        {
            **{f"/usr/bin/{name}": (binaries[name], 0o755) for name in CONTAINERD_BINARIES},
            "/lib/systemd/system/containerd.service": (CONTAINERD_SERVICE, 0o644),
            "/etc/containerd/config.toml": (CONTAINERD_IO_CONFIG, 0o644),
        },
        depends=("libc6 (>= 2.34)", "libseccomp2 (>= 2.5.0)"),
        architecture="amd64",
        section="devel",
        fields={
            **{relation: "containerd, runc" for relation in ("Provides", "Conflicts", "Replaces")},
            "Homepage": "https://containerd.io",
        },
        conffiles=("/etc/containerd/config.toml",),
        scripts={"postinst": CONTAINERD_IO_POSTINST, "prerm": CONTAINERD_IO_PRERM, "postrm": CONTAINERD_IO_POSTRM},
    )


def nvidia_packages(v: Versions) -> dict[str, list[Package]]:
    """The NVIDIA TEST DOUBLES, by repository directory (one CUDA repository per Debian release)."""
    common = Package(
        COMMON,
        "1.0",
        "TEST DOUBLE support files for herd's tests (call log helpers)",
        {"/usr/lib/herd-doubles/_double_common.py": ((HERE / "_double_common.py").read_text(), 0o644)},
        depends=("python3",),
    )
    cuda = {
        f"{CUDA_DIR}/{release['repo']}/x86_64": [
            common,
            Package(
                "cuda-drivers",
                release["version"],
                "TEST DOUBLE of the NVIDIA driver (nvidia-smi only)",
                {"/usr/bin/nvidia-smi": _script("nvidia_smi_double.py", release["version"].split("-")[0])},
            ),
        ]
        for release in v.nvidia_drivers.values()
    }
    return {
        **cuda,
        TOOLKIT_DIR: [
            common,
            Package(
                "nvidia-container-toolkit",
                v.nvidia_toolkit,
                "TEST DOUBLE of the NVIDIA container toolkit (the runtime hands containers on to runc)",
                {
                    "/usr/bin/nvidia-container-runtime": _script(
                        "nvidia_container_runtime_double.py", v.nvidia_toolkit
                    ),
                    "/usr/bin/nvidia-ctk": _script("nvidia_container_runtime_double.py", v.nvidia_toolkit),
                },
                depends=(
                    COMMON,
                    f"nvidia-container-toolkit-base (= {v.nvidia_toolkit})",
                    f"libnvidia-container-tools (= {v.nvidia_toolkit})",
                ),
            ),
            Package(
                "nvidia-container-toolkit-base", v.nvidia_toolkit, "TEST DOUBLE (empty) of the toolkit's base"
            ),
            Package(
                "libnvidia-container-tools",
                v.nvidia_toolkit,
                "TEST DOUBLE (empty) of libnvidia-container-tools",
                depends=(COMMON, f"libnvidia-container1 (= {v.nvidia_toolkit})"),
            ),
            Package("libnvidia-container1", v.nvidia_toolkit, "TEST DOUBLE (empty) of libnvidia-container1"),
        ],
    }


def packages(v: Versions) -> dict[str, list[Package]]:
    """The flat repositories' packages, by repository directory: Kubernetes' first, then the NVIDIA doubles'.
    (Docker's repository is not flat: :func:`containerd_io` gives its package per Debian release.)"""
    binaries = component_binaries((*KUBERNETES_BINARIES, *CNI_PLUGINS))
    return {kubernetes_dir(v): kubernetes_packages(v, binaries), **nvidia_packages(v)}


def _write(target: Path, content: Content, mode: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, Path):
        shutil.copyfile(content, target)  # follows the bin directory's links to the build
    elif isinstance(content, bytes):
        target.write_bytes(content)
    else:
        target.write_text(content)
    target.chmod(mode)


def _control(pkg: Package, installed_kib: int) -> str:
    summary, _, long = pkg.description.partition("\n")
    lines = [
        f"Package: {pkg.name}",
        f"Version: {pkg.version}",
        f"Architecture: {pkg.architecture}",
        f"Maintainer: {MAINTAINER}",
        f"Installed-Size: {installed_kib}",
        *([f"Depends: {', '.join(pkg.depends)}"] if pkg.depends else []),
        *(f"{name}: {value}" for name, value in pkg.fields.items()),
        f"Section: {pkg.section}",
        "Priority: optional",
        f"Description: {summary}",
        *([long] if long else []),
    ]
    return "\n".join(lines) + "\n"


def build_deb(pkg: Package, out_dir: Path) -> Path:
    """Build ``pkg`` into ``out_dir`` with dpkg-deb (zstd, which Debian 12's and 13's dpkg read: a tenth of gzip's
    time on the real binaries)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # the archive's ./ (a temporary directory is 0700)
        (root / "DEBIAN").mkdir()
        size = 0
        for path, (content, mode) in pkg.files.items():
            target = root / path.lstrip("/")
            _write(target, content, mode)
            size += target.stat().st_size
        (root / "DEBIAN" / "control").write_text(_control(pkg, (size + 1023) // 1024))
        if pkg.conffiles:
            (root / "DEBIAN" / "conffiles").write_text("".join(f"{path}\n" for path in pkg.conffiles))
        for name, script in pkg.scripts.items():
            _write(root / "DEBIAN" / name, script, 0o755)
        out_dir.mkdir(parents=True, exist_ok=True)
        deb = out_dir / pkg.filename
        subprocess.run(
            ["dpkg-deb", "--root-owner-group", "-Zzstd", "--build", str(root), str(deb)],
            check=True,
            capture_output=True,
        )
        return deb


def _stanza(deb: Path, filename: str) -> str:
    """The deb's Packages entry, as the archive tools write it: its control fields, where it is, size and sum."""
    fields = subprocess.run(["dpkg-deb", "-f", str(deb)], check=True, capture_output=True, text=True).stdout
    data = deb.read_bytes()
    sha256 = hashlib.sha256(data).hexdigest()
    return f"{fields.rstrip()}\nFilename: {filename}\nSize: {len(data)}\nSHA256: {sha256}\n"


def _index(directory: Path, stanzas: list[str]) -> list[str]:
    """Write Packages and Packages.gz into ``directory``; return their names."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Packages").write_text("\n".join(stanzas))
    (directory / "Packages.gz").write_bytes(gzip.compress((directory / "Packages").read_bytes(), mtime=0))
    return ["Packages", "Packages.gz"]


def _release(directory: Path, indexes: list[str], header: str = "") -> str:
    """A Release file for the indexes under ``directory`` (paths relative to it)."""
    lines = [
        "Origin: herd tests\nLabel: herd tests\n",
        header,
        f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\n",
        "SHA256:\n",
    ]
    for index in indexes:
        data = (directory / index).read_bytes()
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} {index}\n")
    return "".join(lines)


class Signer:
    """A throw-away GPG key, generated for this test session only: ed25519, bound and signing with SHA-512."""

    def __init__(self, home: Path, algo: str = KEY_ALGO, digest: str = DIGEST, cert_digest: str = DIGEST) -> None:
        """The arguments are for tests that need keys apt must refuse (test_apt_trust.py); the repositories' key is
        made with the defaults. ``digest`` signs the repositories, ``cert_digest`` binds the key's user id."""
        self.home = home
        self.digest = digest
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        # --cert-digest-algo: the hash of the key's own binding signature (sqv refuses SHA-1 there).
        uid = "herd test doubles <doubles@herd.invalid>"
        self._gpg("--cert-digest-algo", cert_digest, "--personal-digest-preferences", digest,
                  "--quick-generate-key", uid, algo, "sign", "1d")  # fmt: skip
        self.public_key = self._gpg("--armor", "--export").stdout

    def _gpg(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            [
                "gpg",
                "--homedir",
                str(self.home),
                "--batch",
                "--yes",
                "--pinentry-mode",
                "loopback",
                "--passphrase",
                "",
                *args,
            ],
            input=stdin,
            check=True,
            capture_output=True,
        )

    def close(self) -> None:
        """Stop the gpg-agent gpg started for this key's home."""
        subprocess.run(["gpgconf", "--homedir", str(self.home), "--kill", "gpg-agent"], check=False,
                       capture_output=True)  # fmt: skip

    def sign(self, release: Path) -> None:
        digest = ("--digest-algo", self.digest)
        inline, detached = release.parent / "InRelease", release.parent / "Release.gpg"
        self._gpg(*digest, "--clearsign", "--output", str(inline), str(release))
        self._gpg(*digest, "--armor", "--detach-sign", "--output", str(detached), str(release))


def build_repos(root: Path, versions: Versions) -> list[str]:
    """Build and sign every repository under ``root``; return the directories (relative to ``root``) that hold a
    signed Release: the flat repositories (Kubernetes' first), then Docker's per Debian release
    (``docker/linux/debian/dists/<codename>``)."""
    signer = Signer(root / ".gnupg")
    try:
        return _build_flat(root, versions, signer) + _build_docker(root, versions, signer)
    finally:
        signer.close()


def _build_flat(root: Path, versions: Versions, signer: Signer) -> list[str]:
    # Key files under the names the roles fetch: Release.key (pkgs.k8s.io, and the toolkit's override), and for
    # CUDA the file name NVIDIA gives each release's key.
    key_files = {f"{CUDA_DIR}/{r['repo']}/x86_64": r["key"] for r in versions.nvidia_drivers.values()}
    repos = packages(versions)
    for directory, pkgs in repos.items():
        repo = root / directory
        stanzas = [_stanza(deb, f"./{deb.name}") for deb in (build_deb(pkg, repo) for pkg in pkgs)]
        (repo / "Release").write_text(_release(repo, _index(repo, stanzas)))
        signer.sign(repo / "Release")
        (repo / key_files.get(directory, "Release.key")).write_bytes(signer.public_key)
    return list(repos)


def _build_docker(root: Path, versions: Versions, signer: Signer) -> list[str]:
    """Docker's layout: ``dists/<codename>/{Release,InRelease,Release.gpg}``, the component ``stable``'s index in
    ``dists/<codename>/stable/binary-amd64/``, the packages in ``dists/<codename>/pool/stable/amd64/``, the key at
    ``gpg`` beside ``dists``."""
    base = root / DOCKER_DIR
    binaries = component_binaries(CONTAINERD_BINARIES)
    signed = []
    for codename in DEBIAN_RELEASES:
        dist = base / "dists" / codename
        pool = "pool/stable/amd64"
        deb = build_deb(containerd_io(versions, codename, binaries), dist / pool)
        indexes = _index(dist / "stable" / "binary-amd64", [_stanza(deb, f"dists/{codename}/{pool}/{deb.name}")])
        header = (f"Suite: {codename}\nCodename: {codename}\nArchitectures: amd64\nComponents: stable\n"
                  f"Description: containerd.io for Debian {codename} (herd tests)\n")  # fmt: skip
        (dist / "Release").write_text(_release(dist, [f"stable/binary-amd64/{i}" for i in indexes], header))
        signer.sign(dist / "Release")
        signed.append(f"{DOCKER_DIR}/dists/{codename}")
    (base / "gpg").write_bytes(signer.public_key)
    return signed


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


class RepoServer:
    """Serve ``root`` over HTTP on ``address:port`` (the test network's host side only) in a thread."""

    def __init__(self, root: Path, address: str, port: int) -> None:
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer((address, port), handler)
        self.url = f"http://{address}:{port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> RepoServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


if __name__ == "__main__":  # build into a directory for a look by hand: python -m ... <dir>
    import sys

    print(build_repos(Path(sys.argv[1]), Versions()))
    os.system(f"find {sys.argv[1]} -name '*.deb'")
