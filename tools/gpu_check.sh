#!/usr/bin/env bash
# The one-shot GPU check (issue 29): on a machine with an NVIDIA GPU, from a clean checkout,
#   1. builds mtad with CUDA (MTAD_CUDA=1: it stops if nvcc or a CUDA torch is missing),
#   2. runs the tests that need the GPU (pytest -m cuda) and tests/ops (every op, CPU and CUDA),
#   3. runs every method (ar, sps, mtad, mtad-tree, aded) on SmolLM2 on the GPU and holds its
#      greedy tokens to the CPU's (tools/gpu_greedy.py),
#   4. runs bench/latency on the GPU,
# and writes one report, REPORT.md (plus each step's log and JSON) under the folder given
# as $1, else $OUT, else ./gpu-check-<time>. Exit status 0 only if every step passed.
#
#   tools/gpu_check.sh [REPORT_DIR]
# Environment: PYTHON (default python3: an environment with a CUDA torch whose CUDA equals
# nvcc's), MTAD_BUILD_JOBS (default: all cores), GPU_CHECK_TOKENS (default 64),
# GPU_CHECK_SKIP_BUILD=1 (the installed mtad_ext as it is), MTAD_CACHE (SmolLM2's cache).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
REPORT_DIR="${1:-${OUT:-$ROOT/gpu-check-$(date -u +%Y%m%dT%H%M%SZ)}}"
mkdir -p "$REPORT_DIR"
REPORT_DIR=$(cd "$REPORT_DIR" && pwd)
REPORT="$REPORT_DIR/REPORT.md"
PY="${PYTHON:-python3}"
TOKENS="${GPU_CHECK_TOKENS:-64}"
failed=()

# step NAME COMMAND...: runs it with its log in $REPORT_DIR/NAME.log, a line in the report.
step() {
  local name=$1 start rc
  shift
  start=$(date +%s)
  "$@" >"$REPORT_DIR/$name.log" 2>&1
  rc=$?
  local status=ok
  if ((rc != 0)); then status="FAIL (exit $rc)"; failed+=("$name"); fi
  echo "| $name | $status | $(($(date +%s) - start)) s | \`$*\` |" >>"$REPORT_DIR/steps.md"
  echo "gpu_check: $name: $status"
  return $rc
}

{
  echo "# mtad GPU check"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "- commit: $(git rev-parse HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (modified)')"
  echo "- GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || echo 'nvidia-smi not found')"
  echo "- nvcc: $(nvcc --version 2>/dev/null | sed -n 's/.*release \([0-9.]*\).*/\1/p' || echo 'not found')"
  echo "- torch: $("$PY" -c 'import torch; print(torch.__version__, "CUDA", torch.version.cuda, "available:", torch.cuda.is_available())' 2>&1)"
  echo "- host: $(nproc) cores, $(uname -m)"
} >"$REPORT"
echo "| step | result | time | command |" >"$REPORT_DIR/steps.md"
echo "| --- | --- | --- | --- |" >>"$REPORT_DIR/steps.md"

# 1. Build with CUDA, from a clean build folder of its own; the module goes into the checkout
# (an editable install into $PY's environment), so the tests below import it. What the build
# and the tests need is installed first where missing (best effort: the machine may be offline).
if ! "$PY" -c "import cmake, ninja, nlohmann_json, pytest, numpy, safetensors, transformers" 2>/dev/null; then
  "$PY" -m pip install -q "cmake>=3.22" ninja "nlohmann-json>=3.11" "setuptools>=77" wheel pytest numpy \
    safetensors transformers tokenizers >"$REPORT_DIR/deps.log" 2>&1 || echo "gpu_check: note: dependencies not installed (deps.log)"
fi
if [ "${GPU_CHECK_SKIP_BUILD:-0}" != 1 ]; then
  rm -rf "$ROOT/build/gpu-check"
  export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=1
  step build env MTAD_CUDA=1 MTAD_BUILD_DIR="$ROOT/build/gpu-check" MTAD_BUILD_JOBS="${MTAD_BUILD_JOBS:-$(nproc)}" \
    "$PY" -m pip install --no-build-isolation --no-deps -e "$ROOT"
fi
# The module has the CUDA kernels and sees the GPU (conftest's rule: else `-m cuda` skips all).
step cuda_kernels "$PY" -c "
import sys; sys.path.insert(0, 'tests')
import torch, mtad_ext
from conftest import cuda_kernels
assert torch.cuda.is_available(), 'torch sees no GPU'
assert cuda_kernels(), 'mtad_ext was built without CUDA kernels'
print(torch.cuda.get_device_name(0))"

# 2. Tests: those marked cuda (every op on CUDA against the CPU, CUDA decoding), then tests/ops whole.
step pytest_cuda "$PY" -m pytest -q -m cuda -rs --junitxml="$REPORT_DIR/pytest_cuda.xml" tests
step pytest_ops "$PY" -m pytest -q -rs --junitxml="$REPORT_DIR/pytest_ops.xml" tests/ops

# 3. Every method on SmolLM2, GPU against CPU, greedy.
step greedy "$PY" tools/gpu_greedy.py --devices cpu,cuda --new-tokens "$TOKENS" --json "$REPORT_DIR/greedy.json"

# 4. bench/latency on the GPU (the binary the build made), greedy and sampled.
latency=$(find "$ROOT/build/gpu-check/bin" "$ROOT"/build/*/bin -name latency -type f 2>/dev/null | head -1)
model=$("$PY" -c "import sys; sys.path.insert(0, 'python'); from mtad.fetch import fetch_default; print(fetch_default(progress=False))" 2>/dev/null)
if [ -n "$latency" ] && [ -n "$model" ]; then
  for temp in 0 1; do
    step "latency_t$temp" "$latency" --target "$model" --draft "$ROOT/drafts/smollm2-135m-draft" \
      --prompts "$ROOT/bench/prompts/smollm2_chat.ids" --methods ar,sps,mtad,mtad-tree --new-tokens 128 \
      --temperature "$temp" --device cuda --json "$REPORT_DIR/latency_t$temp.json"
  done
else
  echo "| latency | FAIL (no latency binary or no SmolLM2) | - | - |" >>"$REPORT_DIR/steps.md"
  failed+=(latency)
fi

{
  echo
  echo "## Steps"
  echo
  cat "$REPORT_DIR/steps.md"
  for name in pytest_cuda pytest_ops; do
    echo
    echo "## $name (summary)"
    echo '```'
    grep -E "passed|failed|error|SKIPPED" "$REPORT_DIR/$name.log" | tail -15
    echo '```'
  done
  echo
  echo "## Greedy tokens, GPU against CPU (tools/gpu_greedy.py)"
  echo
  grep -E "^\||^FAIL" "$REPORT_DIR/greedy.log" 2>/dev/null
  for temp in 0 1; do
    if [ -f "$REPORT_DIR/latency_t$temp.log" ]; then
      echo
      echo "## bench/latency on the GPU, temperature $temp"
      echo '```'
      tail -30 "$REPORT_DIR/latency_t$temp.log"
      echo '```'
    fi
  done
  echo
  if ((${#failed[@]} == 0)); then
    echo "**All steps passed.**"
  else
    echo "**Failed: ${failed[*]}** (logs beside this report)"
  fi
} >>"$REPORT"
rm -f "$REPORT_DIR/steps.md"
echo "gpu_check: report in $REPORT"
((${#failed[@]} == 0))
