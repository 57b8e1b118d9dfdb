"""The nvidia role follows the host's Debian release to NVIDIA's repository for it.

NVIDIA publishes one CUDA repository per distribution release — ``.../cuda/repos/debian12/x86_64/`` signed with
``3bf863cc.pub`` (cudatools, fingerprint ...3BF863CC), ``.../cuda/repos/debian13/x86_64/`` signed with
``8793F200.pub`` (Kitmaker (Debian 13 Trixie), fingerprint ...8793F200) — and Debian 13's starts with CUDA 13.0 and
the 580 driver branch (580.65.06), so it has no 570 driver; the container toolkit's repository
(``libnvidia-container/stable/deb``) is one for every Debian release. GIVEN made-up facts for a release WHEN the
role's defaults are evaluated (tests/playbooks/fixtures/nvidia_release.yml, on this machine) THEN the repository,
key, key file and driver pin are that release's (a key file per release, so a server upgraded from 12 to 13 does
not keep verifying with Debian 12's key, which get_url would not replace); a release the role has no repository for
is refused in one line. The booted-host tests install from the doubles' per-release repositories (test_hosts.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.playbooks.fixtures import run_fixture

CUDA = "https://developer.download.nvidia.com/compute/cuda/repos"
TOOLKIT = "https://nvidia.github.io/libnvidia-container/stable/deb/amd64/"

EXPECTED = {
    "bookworm": {"repo_url": f"{CUDA}/debian12/x86_64/", "key_url": f"{CUDA}/debian12/x86_64/3bf863cc.pub",
                 "version": "570.172.08-1", "keyring": "/etc/apt/keyrings/nvidia-cuda-debian12.asc",
                 "toolkit_repo_url": TOOLKIT},
    "trixie": {"repo_url": f"{CUDA}/debian13/x86_64/", "key_url": f"{CUDA}/debian13/x86_64/8793F200.pub",
               "version": "580.65.06-1", "keyring": "/etc/apt/keyrings/nvidia-cuda-debian13.asc",
               "toolkit_repo_url": TOOLKIT},
}  # fmt: skip


def choice(release: str, tmp_path: Path) -> dict[str, str]:
    return run_fixture("nvidia_release", tmp_path / f"{release}.json", release=release)


@pytest.mark.slow
@pytest.mark.parametrize("release", EXPECTED)
def test_the_release_picks_its_repository_key_and_driver(release: str, tmp_path: Path) -> None:
    assert choice(release, tmp_path) == EXPECTED[release]


@pytest.mark.slow
def test_a_release_without_a_repository_is_refused(tmp_path: Path) -> None:
    refused = choice("forky", tmp_path)
    assert refused == {
        "error": "localhost runs Debian forky: the nvidia role knows NVIDIA's CUDA repository of bookworm, trixie "
        "only; add the release to nvidia_driver_releases (repository directory, key file, driver version) or "
        "reinstall the server with one of them"
    }
