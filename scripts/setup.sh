#!/usr/bin/env bash
# Create (or update) the project virtualenv in .venv with pinned versions.
# Usage: scripts/setup.sh [EXTRAS]   e.g. scripts/setup.sh examples   or   scripts/setup.sh examples,infra,ops,dev
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-examples}"
python3 -m venv .venv
stamp=".venv/.herd-installed-$(echo "$extras" | tr ',' '-')"
# Reinstall only when the pins changed since the last install of these extras.
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade "pip==26.3"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[${extras}]"
    touch "$stamp"
fi
