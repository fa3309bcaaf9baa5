#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one command (under 5 minutes; each step has a time limit):
#   1. the GPU-marked tests but the benchmark's (pytest -m gpu: bf16-mixed runs, trainer.cuda_graphs=true)
#   2. a bf16-mixed training run with python -m mlproj into a temporary sqlite store
#   3. scripts/benchmark.py --device cuda --skip-lightning --repeat 3: the hand-written loop against mlproj,
#      plain, with CUDA graphs, under bf16 and both (its last line is the JSON with the ratios; the target is
#      mlproj_cuda_graphs_vs_raw >= 1.0)
# Everything is written under $OUT (default benchmarks/gpu): one .txt per step, benchmark.json, summary.txt.
# Uses $VENV (default .venv) when it exists, else creates .venv with scripts/setup.sh and a CUDA build of
# torch (TORCH_SPEC; needs the network).
# Exit status: non-zero when any step failed; every step runs regardless.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-benchmarks/gpu}
mkdir -p "$out"
venv=${VENV:-.venv}
if [ ! -x "$venv/bin/python" ]; then
  venv=.venv
  TORCH_SPEC=${TORCH_SPEC:-"torch==2.13.0 --index-url https://download.pytorch.org/whl/cu126"} scripts/setup.sh || exit 1
fi
py=$venv/bin/python
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # this checkout's code, even with another editable install
summary="$out/summary.txt"
: > "$summary"
failed=0

step() {  # step NAME SECONDS COMMAND...: run with a time limit, log to $out/NAME.txt, record the outcome
  local name=$1 limit=$2
  shift 2
  local began=$SECONDS
  timeout "$limit" "$@" > "$out/$name.txt" 2>&1
  local rc=$?
  local verdict=ok
  [ $rc -eq 0 ] || { verdict="FAILED (exit $rc; 124 = over ${limit}s)"; failed=1; }
  echo "$name: $verdict in $((SECONDS - began))s" | tee -a "$summary"
}

{
  date -u +"%Y-%m-%dT%H:%M:%SZ"
  git rev-parse --short HEAD 2>/dev/null
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  "$py" -c "import torch, pytorch_lightning as pl; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'available', torch.cuda.is_available(), '| lightning', pl.__version__)"
} | tee "$out/machine.txt"
if ! "$py" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  echo "no CUDA device visible to torch (a CPU build of torch? see TORCH_SPEC in scripts/setup.sh)" | tee -a "$summary"
  exit 1
fi

step pytest_gpu 150 "$py" -m pytest -m gpu -ra -v -s tests/test_gpu.py -k "not benchmark" -p no:cacheprovider

store=$(mktemp -d)
step train_bf16 60 "$py" -m mlproj trainer=gpu trainer.precision=bf16-mixed data=synthetic data.rows=100000 \
  data.features=32 data.batch_size=256 "model.hidden_sizes=[256,256]" trainer.max_epochs=5 trainer.log_every_n_steps=100 \
  trainer.progress_bar=plain "tracking.uri=sqlite:///$store/mlflow.db" tracking.experiment=gpu-check "hydra.run.dir=$store/hydra"
rm -rf "$store"

step benchmark 200 "$py" scripts/benchmark.py --device cuda --skip-lightning --repeat 3
tail -n 1 "$out/benchmark.txt" > "$out/benchmark.json"
grep -E "samples/s|_vs_|^[0-9]+ rows|^# " "$out/benchmark.txt" | tee -a "$summary"
cat "$out/benchmark.json" | tee -a "$summary"
exit $failed
