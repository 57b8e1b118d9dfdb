"""Static checks: ansible-lint's production profile, syntax of every playbook, documented role variables."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PLAYBOOKS = sorted((REPO / "playbooks").glob("*.yml"))
ROLES = sorted(p for p in (REPO / "playbooks" / "roles").iterdir() if p.is_dir())


def test_every_playbook_the_issue_names_exists() -> None:
    assert {p.name for p in PLAYBOOKS} >= {"site.yml", "control_plane.yml", "join.yml", "remove_node.yml",
                                           "verify.yml"}  # fmt: skip


@pytest.mark.slow
def test_ansible_lint_production_profile_is_clean() -> None:
    proc = subprocess.run(
        [str(BIN / "ansible-lint"), "--offline", "--profile", "production", "--nocolor"],
        cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]


def test_no_global_lint_skips() -> None:
    config = yaml.safe_load((REPO / ".ansible-lint").read_text())
    assert not config.get("skip_list") and not config.get("warn_list"), "use a local '# noqa <rule>' with a reason"
    assert config["profile"] == "production"


@pytest.mark.slow
@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=lambda p: p.name)
def test_syntax_check(playbook: Path) -> None:
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "--syntax-check", "-i", "inventory/example/hosts.yml", str(playbook)],
        cwd=REPO, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_role_variables_are_prefixed_and_documented(role: Path) -> None:
    """Every default is named <role>_... and described in meta/argument_specs.yml."""
    defaults_file = role / "defaults" / "main.yml"
    defaults = yaml.safe_load(defaults_file.read_text()) if defaults_file.exists() else {}
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    documented = {name for entry in specs.values() for name in (entry.get("options") or {})}
    for name in defaults or {}:
        assert name.startswith(f"{role.name}_"), f"{role.name}: default {name} lacks the role prefix"
        assert name in documented, f"{role.name}: default {name} is not in meta/argument_specs.yml"
    for entry in specs.values():
        for name, option in (entry.get("options") or {}).items():
            assert option.get("description"), f"{role.name}: option {name} has no description"


def test_taxonomy_is_the_one_file() -> None:
    """Ansible reads ml_jobs/taxonomy.yaml itself, through a link, never a copy."""
    link = REPO / "playbooks" / "vars" / "taxonomy.yml"
    assert link.is_symlink()
    assert link.resolve() == (REPO / "ml_jobs" / "taxonomy.yaml").resolve()


def test_every_role_and_the_test_hosts_name_the_same_debian_releases() -> None:
    """The releases the roles claim (meta platforms), the test hosts boot (testbed, build-rootfs.sh) and the nvidia
    role has NVIDIA's repository for: one list, held together here."""
    from tests.playbooks.testbed import RELEASES

    for role in ROLES:
        (platform,) = yaml.safe_load((role / "meta" / "main.yml").read_text())["galaxy_info"]["platforms"]
        assert platform == {"name": "Debian", "versions": list(RELEASES)}, role.name
    script = (REPO / "tests" / "playbooks" / "hosts" / "build-rootfs.sh").read_text()
    assert re.search(r"^SUITES=\((.*)\)$", script, re.M)[1].split() == list(RELEASES)
    nvidia = yaml.safe_load((REPO / "playbooks" / "roles" / "nvidia" / "defaults" / "main.yml").read_text())
    assert list(nvidia["nvidia_driver_releases"]) == list(RELEASES)
