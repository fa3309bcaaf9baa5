#!/usr/bin/env bash
# The project's checks, as CI runs them: install (idempotent), lint and format check, then the tests.
# Extra arguments go to pytest: scripts/test.sh -k registry -x
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports --no-cache  # imports point down (pyproject.toml [tool.importlinter])
exec .venv/bin/python -m pytest "$@"
