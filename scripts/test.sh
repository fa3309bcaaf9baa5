#!/usr/bin/env bash
# The project's checks: install (idempotent), lint and format check, import layers, then the tests in tiers.
#   scripts/test.sh          the fast tier: in-process tests only (every test that starts a process is marked
#                            `slow`; tests/conftest.py fails one that spawns without the marker)
#   scripts/test.sh --all    both tiers, what CI runs: the fast tier, then the slow one (subprocess CLI runs,
#                            servers, DDP and multi-process tests, the soak; those marked `serial` alone)
# Other arguments go to pytest: scripts/test.sh -k registry -x ; scripts/test.sh --all -k ddp
#   MLPROJ_TEST_WORKERS   pytest-xdist workers for each tier (default 2; 0 runs them in one process)
set -euo pipefail
cd "$(dirname "$0")/.."
all=false
args=()
for arg in "$@"; do
  if [ "$arg" = "--all" ]; then all=true; else args+=("$arg"); fi
done
scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/lint-imports --no-cache  # imports point down (pyproject.toml [tool.importlinter])

workers=${MLPROJ_TEST_WORKERS:-2}
xdist=()
if [ "$workers" != "0" ]; then
  # --dist loadfile: a module's tests share one worker (module-scoped runs are trained once). One thread per
  # worker: two workers on two cores, not four threads fighting for them.
  xdist=(-n "$workers" --dist loadfile)
fi
threads=${OMP_NUM_THREADS:-$([ "$workers" = "0" ] && nproc || echo 1)}
tier() {  # tier NAME MARKER [pytest args...]: run one tier and print its wall time
  local name=$1 marker=$2 start rc=0
  shift 2
  start=$(date +%s)
  .venv/bin/python -m pytest -m "$marker" "$@" || rc=$?
  echo "mlproj tests: $name tier took $(($(date +%s) - start)) s (exit $rc)"
  # 5: no test collected (e.g. -k selected only tests of the other tier): not a failure
  [ "$rc" = 0 ] || [ "$rc" = 5 ]
}
OMP_NUM_THREADS=$threads tier fast "not slow" "${xdist[@]+"${xdist[@]}"}" "${args[@]+"${args[@]}"}"
if $all; then
  # The slow tier on the same workers, a module per worker; then the tests marked `serial` (timing is part of
  # what they check: a server lost for N seconds, a worker killed mid-trial, four jobs at once) alone.
  OMP_NUM_THREADS=$threads tier slow "slow and not serial" "${xdist[@]+"${xdist[@]}"}" "${args[@]+"${args[@]}"}"
  tier "slow, alone" "slow and serial" "${args[@]+"${args[@]}"}"
fi
