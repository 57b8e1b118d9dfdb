"""The doubles' apt repositories are trusted the way a real repository is, and only that way.

The roles install the doubles through apt with ``Signed-By`` sources and nothing else: no ``trusted=yes``, no
``allow-insecure``. That proves something only if apt really checks the signatures. Debian 13's apt verifies them
with sqv (Sequoia), whose policy refuses SHA-1 in signatures and key bindings and DSA1024 keys; bookworm's uses
gpgv. So:

- here, without a host: the key is ed25519 and every signature on it and on the repositories uses SHA-512;
- on a booted host of each release: apt-get update of the doubles' repository succeeds without a warning and a
  double installs from it; the same repository with its InRelease altered after signing, or not signed at all, is
  refused;
- the controls, which show the policy applied is the one claimed: on trixie, a repository signed by a SHA-1-bound
  RSA-3072 key, with a SHA-1 signature, or by a DSA1024 key is refused, each for the reason sqv gives, while an
  RSA-3072 key bound and signing with SHA-512 is accepted; bookworm's gpgv accepts the SHA-1-bound and the DSA1024
  key and refuses only the SHA-1 signature (so bookworm hosts alone could not show a key trixie refuses).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import built_components
from tests.playbooks.doubles.aptrepo import Signer, Versions, build_repos
from tests.playbooks.testbed import RELEASES, HostSpec, Testbed, why_not_available

REPO = Path(__file__).resolve().parents[2]
NET = 4
HOST = "apt1"
# OpenPGP's algorithm numbers as gpg --list-packets prints them (RFC 4880 9.1, 9.4; RFC 9580).
EDDSA = 22
SHA256_OR_BETTER = {8, 9, 10}  # SHA-256, SHA-384, SHA-512
SHA512 = 10
TRUST_OVERRIDES = re.compile(
    r"trusted\s*[=:]\s*(yes|true)|allow[-_]?insecure|allow[-_]unauthenticated|allow[-_]downgrade_to_insecure", re.I
)


def test_no_role_turns_apt_s_checks_off() -> None:
    """What the booted tests prove holds for the roles only if they add repositories with Signed-By alone."""
    for path in sorted((REPO / "playbooks").rglob("*")):
        if path.is_file() and path.suffix in {".yml", ".j2"}:
            assert not TRUST_OVERRIDES.search(path.read_text()), path.relative_to(REPO)


def packets(data: bytes) -> str:
    return subprocess.run(["gpg", "--list-packets"], input=data, capture_output=True, check=True).stdout.decode()


@pytest.mark.skipif(shutil.which("gpg") is None or shutil.which("dpkg-deb") is None, reason="needs gpg, dpkg-deb")
def test_the_doubles_key_and_signatures_are_what_sqv_accepts(tmp_path: Path) -> None:
    built_components("the real Kubernetes and containerd packages")
    repos = build_repos(tmp_path, Versions())
    root = tmp_path / repos[0]
    key = packets((root / "Release.key").read_bytes())
    # One primary key, ed25519 (EdDSA), no subkeys of another kind.
    assert re.findall(r":public (?:sub)?key packet:\n\s+version \d+, algo (\d+)", key) == [str(EDDSA)]
    assert "ed25519" in key
    # Every signature on the key (its user-id binding) and on every repository's Release: SHA-512.
    bindings = [int(d) for d in re.findall(r"digest algo (\d+)", key)]
    assert bindings and set(bindings) <= SHA256_OR_BETTER and SHA512 in bindings
    for repo in repos:
        for signature in ("InRelease", "Release.gpg"):
            verify = ["gpg", "--homedir", str(tmp_path / ".gnupg"), "--batch", "--status-fd", "1", "--verify",
                      str(tmp_path / repo / signature)] + ([str(tmp_path / repo / "Release")]
                                                           if signature == "Release.gpg" else [])  # fmt: skip
            status = subprocess.run(verify, capture_output=True, text=True, check=True).stdout
            # VALIDSIG <fingerprint> <date> <timestamp> <expires> <version> <reserved> <key algo> <hash algo> ...
            (validsig,) = [line.split()[2:] for line in status.splitlines() if " VALIDSIG " in line]
            assert (int(validsig[6]), int(validsig[7])) == (EDDSA, SHA512), (repo, signature)


# -- on booted hosts ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=RELEASES)
def bed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Testbed:
    if (reason := why_not_available(request.param)) is not None:
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp(f"apt-trust-{request.param}")
    with Testbed([HostSpec(HOST, "cpu_nodes")], workdir, net=NET, release=request.param) as testbed:
        yield testbed


def k8s_repo(bed: Testbed) -> str:
    return f"k8s/core:/stable:/v{bed.versions.kubernetes_minor}/deb"


def serve_copy(bed: Testbed, name: str, keep: tuple[str, ...] = ("InRelease", "Release.gpg", "Release")) -> Path:
    """A copy of the doubles' Kubernetes repository under ``trust/<name>``, with only the ``keep`` index files."""
    target = bed.repo_root / "trust" / name
    shutil.copytree(bed.repo_root / k8s_repo(bed), target)
    for index in ("InRelease", "Release.gpg", "Release"):
        if index not in keep:
            (target / index).unlink()
    return target


def apt(bed: Testbed, case: str, url_path: str, key: str, command: str) -> subprocess.CompletedProcess[str]:
    """Run ``apt-get <command>`` on the host against one repository only (its own sources and lists), the way the
    roles add one: a deb822 source with Signed-By, the key fetched from the repository, nothing else."""
    etc, lists = f"/etc/apt/herd-trust/{case}", f"/var/lib/herd-trust/{case}/lists"
    keyring = f"/etc/apt/keyrings/{case}.asc"  # outside the sources directory, as the roles keep theirs
    source = (f"Types: deb\nURIs: {bed.repo_url}/{url_path}/\nSuites: /\n"
              f"Signed-By: {keyring}\n")  # fmt: skip
    setup = (
        f"mkdir -p {etc} {lists}/partial /etc/apt/keyrings && printf '%s' '{source}' > {etc}/repo.sources && "
        f"/usr/lib/apt/apt-helper download-file {bed.repo_url}/{url_path}/{key} {keyring} >/dev/null"
    )
    bed.ssh(HOST, setup)
    options = f"-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts={etc} -o Dir::State::Lists={lists}"
    return bed.ssh(HOST, f"LC_ALL=C apt-get {options} {command} 2>&1", check=False)


@pytest.mark.hosts
def test_apt_accepts_the_doubles_repository_and_installs_a_double(bed: Testbed) -> None:
    # GIVEN the doubles' Kubernetes repository as the kubernetes role adds it
    update = apt(bed, "good", k8s_repo(bed), "Release.key", "update")
    # THEN apt fetches its signed index without a word about the signature
    assert update.returncode == 0, update.stdout
    assert not re.search(r"^(W|E|N):", update.stdout, re.M), update.stdout
    assert not TRUST_OVERRIDES.search(bed.ssh(HOST, "cat /etc/apt/herd-trust/good/repo.sources").stdout)
    # ... and installs a double from it
    version = f"{bed.versions.kubernetes}-{bed.versions.kubernetes_revision}"
    command = f"install -y --no-install-recommends kubectl={version}"
    install = apt(bed, "good", k8s_repo(bed), "Release.key", command)
    assert install.returncode == 0, install.stdout
    assert bed.ssh(HOST, "dpkg-query -W -f '${Version}' kubectl").stdout == version
    if bed.release == "trixie":
        # sqv did the checking (trixie's apt has no gpgv to fall back on) ...
        assert bed.ssh(HOST, "command -v sqv && ! command -v gpgv", check=False).returncode == 0
        # ... and apt's audit, which names what its policy will refuse next, has nothing to say either.
        audit = apt(bed, "good", k8s_repo(bed), "Release.key", "update --audit")
        assert audit.returncode == 0 and not re.search(r"^(W|E|N|Audit):", audit.stdout, re.M), audit.stdout


@pytest.mark.hosts
def test_apt_refuses_an_index_altered_after_signing(bed: Testbed) -> None:
    repo = serve_copy(bed, "tampered", keep=("InRelease",))
    signed = (repo / "InRelease").read_text()
    # The attack: point the signed index at another Packages file (here: the hash of an empty one).
    tampered = re.sub(r"^ [0-9a-f]{64} (\d+) Packages$", lambda m: f" {'0' * 64} {m[1]} Packages", signed,
                      count=1, flags=re.M)  # fmt: skip
    assert tampered != signed
    (repo / "InRelease").write_text(tampered)
    update = apt(bed, "tampered", "trust/tampered", "Release.key", "update")
    assert update.returncode != 0 and "is not signed" in update.stdout, update.stdout
    because = {"bookworm": "BADSIG", "trixie": "Message has been manipulated"}[bed.release]  # gpgv's, sqv's words
    assert because in update.stdout, update.stdout


@pytest.mark.hosts
def test_apt_refuses_an_unsigned_repository(bed: Testbed) -> None:
    serve_copy(bed, "unsigned", keep=("Release",))
    update = apt(bed, "unsigned", "trust/unsigned", "Release.key", "update")
    assert update.returncode != 0, update.stdout
    assert "is not signed" in update.stdout, update.stdout


# Keys and signatures apt must refuse, and their neighbours it must accept (so that a refusal is for the named
# reason): (key algorithm, hash binding the key, hash signing the index) -> per release, None where apt accepts it,
# else what its refusal says. bookworm's apt (gpgv) refuses SHA-1 signatures on the index itself, but not a SHA-1
# key binding nor a DSA1024 key; trixie's sqv refuses all three.
CONTROLS = {
    "rsa3072": (("rsa3072", "SHA512", "SHA512"), {"bookworm": None, "trixie": None}),
    "sha1-bound-rsa3072": (("rsa3072", "SHA1", "SHA512"),
                           {"bookworm": None, "trixie": r"SHA1 is not considered secure"}),
    "sha1-signed-rsa3072": (("rsa3072", "SHA512", "SHA1"),
                            {"bookworm": r"signatures were invalid", "trixie": r"SHA1 is not considered secure"}),
    "dsa1024": (("dsa1024", "SHA256", "SHA256"),
                {"bookworm": None, "trixie": r"DSA1024 is not considered secure"}),
}  # fmt: skip


@pytest.mark.hosts
@pytest.mark.parametrize("control", CONTROLS)
def test_apt_refuses_the_keys_its_policy_refuses(bed: Testbed, control: str, tmp_path: Path) -> None:
    (algo, cert_digest, digest), expected = CONTROLS[control]
    # GIVEN the doubles' repository signed again by another key
    signer = Signer(tmp_path / "gnupg", algo=algo, digest=digest, cert_digest=cert_digest)
    try:
        repo = serve_copy(bed, control, keep=("Release",))
        signer.sign(repo / "Release")
        (repo / "control.key").write_bytes(signer.public_key)
    finally:
        signer.close()
    update = apt(bed, control, f"trust/{control}", "control.key", "update")
    refusal = expected[bed.release]
    if refusal is None:
        # THEN apt accepts it like the doubles' own key ...
        assert update.returncode == 0 and not re.search(r"^(W|E):", update.stdout, re.M), update.stdout
    else:
        # ... or refuses it, for the reason its policy gives
        assert update.returncode != 0 and "is not signed" in update.stdout, update.stdout
        assert re.search(refusal, update.stdout), update.stdout
