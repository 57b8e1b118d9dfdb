"""Build the TEST-DOUBLE Debian packages and serve them as signed flat apt repositories.

Kubernetes (kubeadm, kubelet, kubectl), the NVIDIA driver (nvidia-smi) and the NVIDIA container toolkit are on
no registry reachable from here. The roles install them from their upstream apt repositories (pkgs.k8s.io,
NVIDIA's CUDA and libnvidia-container repositories, all "flat" repositories signed with a key the role fetches
into /etc/apt/keyrings). For the tests this module builds packages with the same names and versions whose
programs are the doubles beside it, lays them out as flat repositories signed with a GPG key generated for this
test session, and serves them over HTTP on the test network. NVIDIA's CUDA repository is one per Debian release
(debian12, debian13, each with its own key file name and driver pin, read from the nvidia role's defaults), so the
doubles are too. The inventory then points the roles' repository and key URLs (for CUDA only the base) here, and
everything else — which release's repository, key download, sources file, apt update, pinned install, hold — runs
the real way.

The signing key is one Debian 13's apt accepts: trixie's apt verifies with sqv (Sequoia), whose policy refuses
SHA-1 in signatures and key bindings and DSA1024 keys. So the key is ed25519, and its self-signatures and the
repositories' signatures are made with SHA-512, named explicitly rather than left to gpg's defaults (which vary
with its version and configuration). test_apt_trust.py checks the packets, and apt on booted hosts of both
releases.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import os
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
NVIDIA_DEFAULTS = HERE.parents[2] / "playbooks" / "roles" / "nvidia" / "defaults" / "main.yml"
# gpg's own names for what the key is made with (see Signer).
KEY_ALGO = "ed25519"
DIGEST = "SHA512"
MAINTAINER = "herd tests <tests@herd.invalid>"
COMMON = "herd-test-doubles-common"

KUBELET_SERVICE = """\
[Unit]
Description=kubelet: The Kubernetes Node Agent (TEST DOUBLE)
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=5

[Install]
WantedBy=multi-user.target
"""

# kubeadm's drop-in, as the real kubeadm package ships it.
KUBEADM_DROPIN = """\
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf \
--kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"""


@dataclass
class Package:
    name: str
    version: str
    description: str
    files: dict[str, tuple[str, int]] = field(default_factory=dict)  # path -> (content, mode)
    depends: tuple[str, ...] = (COMMON,)


def nvidia_driver_releases() -> dict[str, dict[str, str]]:
    """The nvidia role's CUDA repository per Debian release (repo directory, key file name, driver pin): the one
    owner of those facts; the doubles are built to match."""
    return yaml.safe_load(NVIDIA_DEFAULTS.read_text())["nvidia_driver_releases"]


@dataclass
class Versions:
    """The versions the doubles claim to be; the inventory pins the roles to the same ones (the NVIDIA driver's
    pins per release are the role's own defaults)."""

    kubernetes: str = "1.36.3"
    kubernetes_revision: str = "1.1"
    nvidia_drivers: dict[str, dict[str, str]] = field(default_factory=nvidia_driver_releases)
    nvidia_toolkit: str = "1.17.8-1"

    @property
    def kubernetes_minor(self) -> str:
        return ".".join(self.kubernetes.split(".")[:2])


def _script(name: str, version: str) -> tuple[str, int]:
    return (HERE / name).read_text(encoding="utf-8").replace("@VERSION@", version), 0o755


def packages(v: Versions) -> dict[str, list[Package]]:
    """The repositories' packages, by repository directory (one CUDA repository per Debian release)."""
    k8s = f"{v.kubernetes}-{v.kubernetes_revision}"
    common = Package(
        COMMON,
        "1.0",
        "TEST DOUBLE support files for herd's tests (call log helpers)",
        {"/usr/lib/herd-doubles/_double_common.py": ((HERE / "_double_common.py").read_text(), 0o644)},
        depends=("python3",),
    )
    cuda = {
        f"nvidia/cuda/{release['repo']}/x86_64": [
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
        f"k8s/core:/stable:/v{v.kubernetes_minor}/deb": [
            common,
            Package(
                "kubeadm",
                k8s,
                "TEST DOUBLE of kubeadm (parses and checks its configuration)",
                {
                    "/usr/bin/kubeadm": _script("kubeadm_double.py", v.kubernetes),
                    "/usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf": (KUBEADM_DROPIN, 0o644),
                },
                depends=(COMMON, "python3-yaml", "kubelet"),
            ),
            Package(
                "kubelet",
                k8s,
                "TEST DOUBLE of kubelet (checks its config, runs no pods)",
                {
                    "/usr/bin/kubelet": _script("kubelet_double.py", v.kubernetes),
                    "/usr/lib/systemd/system/kubelet.service": (KUBELET_SERVICE, 0o644),
                },
                depends=(COMMON, "python3-yaml"),
            ),
            Package(
                "kubectl",
                k8s,
                "TEST DOUBLE of kubectl (node commands against a recorded pretend cluster)",
                {"/usr/bin/kubectl": _script("kubectl_double.py", v.kubernetes)},
            ),
        ],
        **cuda,
        "nvidia/libnvidia-container/stable/deb/amd64": [
            common,
            Package(
                "nvidia-container-toolkit",
                v.nvidia_toolkit,
                "TEST DOUBLE of the NVIDIA container toolkit",
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


def build_deb(pkg: Package, out_dir: Path) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "DEBIAN").mkdir()
        control = (
            f"Package: {pkg.name}\nVersion: {pkg.version}\nArchitecture: all\nMaintainer: {MAINTAINER}\n"
            f"Depends: {', '.join(pkg.depends)}\nSection: admin\nPriority: optional\n"
            f"Description: {pkg.description}\n"
        )
        (root / "DEBIAN" / "control").write_text(control)
        for path, (content, mode) in pkg.files.items():
            target = root / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
            target.chmod(mode)
        deb = out_dir / f"{pkg.name}_{pkg.version}_all.deb"
        subprocess.run(
            ["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(root), str(deb)],
            check=True,
            capture_output=True,
        )
        return deb


def _release(repo: Path) -> str:
    lines = [
        "Origin: herd test doubles\nLabel: herd test doubles\n",
        f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\n",
        "SHA256:\n",
    ]
    for index in ("Packages", "Packages.gz"):
        data = (repo / index).read_bytes()
        lines.append(f" {hashlib.sha256(data).hexdigest()} {len(data)} {index}\n")
    return "".join(lines)


class Signer:
    """A throw-away GPG key, generated for this test session only: ed25519, bound and signing with SHA-512."""

    def __init__(self, home: Path, algo: str = KEY_ALGO, digest: str = DIGEST, cert_digest: str = DIGEST) -> None:
        """The arguments are for tests that need keys apt must refuse (test_apt_trust.py); the doubles' key is made
        with the defaults. ``digest`` signs the repositories, ``cert_digest`` binds the key's user id to it."""
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
    """Build and sign every repository under ``root``; return their directories (relative to ``root``)."""
    signer = Signer(root / ".gnupg")
    try:
        return _build_and_sign(root, versions, signer)
    finally:
        signer.close()


def _build_and_sign(root: Path, versions: Versions, signer: Signer) -> list[str]:
    # Key files under the names the roles fetch: Release.key (pkgs.k8s.io, and the toolkit's override), and for
    # CUDA the file name NVIDIA gives each release's key.
    key_files = {f"nvidia/cuda/{r['repo']}/x86_64": r["key"] for r in versions.nvidia_drivers.values()}
    repos = packages(versions)
    for directory, pkgs in repos.items():
        repo = root / directory
        repo.mkdir(parents=True, exist_ok=True)
        stanzas = []
        for pkg in pkgs:
            deb = build_deb(pkg, repo)
            fields = subprocess.run(
                ["dpkg-deb", "-f", str(deb)], check=True, capture_output=True, text=True
            ).stdout
            data = deb.read_bytes()
            stanzas.append(
                f"{fields.rstrip()}\nFilename: ./{deb.name}\nSize: {len(data)}\n"
                f"SHA256: {hashlib.sha256(data).hexdigest()}\n"
            )
        (repo / "Packages").write_text("\n".join(stanzas))
        (repo / "Packages.gz").write_bytes(gzip.compress((repo / "Packages").read_bytes(), mtime=0))
        (repo / "Release").write_text(_release(repo))
        signer.sign(repo / "Release")
        (repo / key_files.get(directory, "Release.key")).write_bytes(signer.public_key)
    return list(repos)


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
