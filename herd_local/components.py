"""The upstream components scripts/components.sh builds from their Go modules (etcd, the Kubernetes binaries,
KWOK, Kueue, containerd, runc, the CNI plugins), and where they are."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from herd_local.errors import LocalClusterError
from herd_local.paths import COMPONENTS_SCRIPT

__all__ = ["components_dir"]


def components_dir() -> Path:
    """Where the built components are: ``$HERD_COMPONENTS_BIN``, else what ``scripts/components.sh --dir`` says.

    Raises:
        LocalClusterError: they are not built (the script's own line says what is missing).
    """
    if env := os.environ.get("HERD_COMPONENTS_BIN"):
        return Path(env)
    done = subprocess.run(["bash", str(COMPONENTS_SCRIPT), "--dir"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        raise LocalClusterError(lines[-1] if lines else "the components are not built: run scripts/components.sh")
    return Path(done.stdout.strip())
