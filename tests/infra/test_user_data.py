"""The boot script is a template file (infra/templates/user-data.sh) rendered with its values: every placeholder
is filled, scalar values are shell-quoted, and a template and values that disagree are an error, not a script."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from infra import burst_pool, config
from infra.burst_pool import TEMPLATES, KubeadmControlPlane, render_user_data


@pytest.fixture(scope="module")
def cfg(example_values) -> config.StackConfig:
    return config.load(example_values)


def _render(cfg: config.StackConfig, pool_tier: str, parameter: str = "/herd/lab/join-token") -> str:
    pool = next(p for p in cfg.pools if (p.tier == "gpu") == (pool_tier == "gpu"))
    plane = KubeadmControlPlane(cfg.control_plane_endpoint, cfg.control_plane_ca_cert_hash)
    return render_user_data(cfg, pool, plane, parameter)


@pytest.mark.parametrize("tier", ["gpu", "high-cpu"])
def test_every_placeholder_is_filled_and_the_script_is_bash(cfg, tier, tmp_path):
    script = _render(cfg, tier)
    assert "@@" not in script
    assert script.startswith("#!/bin/bash\n")
    path = tmp_path / "user-data.sh"
    path.write_text(script)
    subprocess.run([shutil.which("bash") or "bash", "-n", str(path)], check=True)
    # The files it installs are the template files, verbatim.
    assert (TEMPLATES / "herd-delete-node.sh").read_text() in script
    assert (TEMPLATES / "herd-delete-node.service").read_text() in script
    assert ((TEMPLATES / "gpu-runtime.sh").read_text() in script) == (tier == "gpu")


def test_scalar_values_are_shell_quoted(cfg, tmp_path):
    script = _render(cfg, "gpu", parameter="/herd/lab team/join token")
    assert "JOIN_PARAMETER='/herd/lab team/join token'\n" in script
    path = tmp_path / "user-data.sh"
    path.write_text(script)
    subprocess.run([shutil.which("bash") or "bash", "-n", str(path)], check=True)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("AWS_REGION=@@{AWS_REGION}\n", ""), "['AWS_REGION']"),
        (lambda t: t + "echo @@{CLUSTER_NAME}\n", "['CLUSTER_NAME']"),
    ],
    ids=["value-without-placeholder", "placeholder-without-value"],
)
def test_a_template_and_values_that_disagree_are_refused(cfg, tmp_path, monkeypatch, edit, message):
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    (templates / "user-data.sh").write_text(edit((TEMPLATES / "user-data.sh").read_text()))
    monkeypatch.setattr(burst_pool, "TEMPLATES", Path(templates))
    with pytest.raises(ValueError) as info:
        _render(cfg, "gpu")
    assert str(info.value) == f"user-data template and values disagree: {message}"
