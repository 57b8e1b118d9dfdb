"""Where herd_local finds what it builds and runs from: the one owner of the repository's paths it reads."""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "COMPONENTS_SCRIPT",
    "COMPONENT_WRAPPERS",
    "DEBIAN_MIRROR_SCRIPT",
    "EXAMPLES",
    "EXAMPLE_INVENTORY",
    "EXAMPLE_STACK",
    "GPU_FIXTURES",
    "KWOK_STAGES",
    "PLAYBOOK_ROLES",
    "REPO",
]

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_STACK = REPO / "Pulumi.example.yaml"
EXAMPLE_INVENTORY = REPO / "inventory" / "example"
EXAMPLES = REPO / "examples"
PLAYBOOK_ROLES = REPO / "playbooks" / "roles"
COMPONENTS_SCRIPT = REPO / "scripts" / "components.sh"
# The wrapper modules scripts/components.sh builds from (go.mod pins each release).
COMPONENT_WRAPPERS = REPO / "scripts" / "components"
DEBIAN_MIRROR_SCRIPT = REPO / "scripts" / "debian-mirror.sh"
# What nvidia-smi and GPU feature discovery say on GPU machines, captured or by hand (herd_local.gpu_facts).
GPU_FIXTURES = REPO / "tests" / "fixtures" / "gpu"
KWOK_STAGES = Path(__file__).with_name("kwok_stages.yaml")
