#!/usr/bin/env bash
# Create .venv and install mlproj with its dev tools. Idempotent: a second run with an unchanged
# pyproject.toml returns at once.
#   TORCH_SPEC   the torch requirement installed first (default: torch==2.13.0, the CPU build; use e.g.
#                "torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126" for CUDA)
#   PYTHON       the interpreter for the venv (default: python3)
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv
stamp=$venv/.mlproj-installed
want=$(cat pyproject.toml | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
[ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
# torch first and explicitly: a bare `torch` requirement would resolve to a multi-GB CUDA build.
# shellcheck disable=SC2086
"$venv/bin/pip" install --quiet --disable-pip-version-check ${TORCH_SPEC:-torch==2.13.0}
"$venv/bin/pip" install --quiet --disable-pip-version-check -e ".[dev]"
echo "$want" > "$stamp"
echo "mlproj installed in $venv (activate: source $venv/bin/activate)"
