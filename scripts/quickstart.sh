#!/usr/bin/env bash
# One command on a fresh machine: install into .venv, then train the default job (MLP on diabetes),
# tracked in ./mlflow.db. Extra arguments are Hydra overrides: scripts/quickstart.sh model=linear
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python -m mlproj "$@"
