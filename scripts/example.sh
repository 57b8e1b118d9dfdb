#!/usr/bin/env bash
# The README's first command: set up a virtualenv and run the bundled example sweep on this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh examples
exec .venv/bin/ml-jobs run examples/digits-sweep.yaml --local "$@"
