#!/usr/bin/env bash
# Compile-only check of every CUDA source under csrc/ (needs nvcc, no GPU): one line per
# file, non-zero exit if any file fails to compile or compiles with a warning.
# NVCC overrides the compiler, e.g. NVCC=/usr/local/cuda/bin/nvcc tools/check_cuda.sh.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
NVCC="${NVCC:-nvcc}"
command -v "$NVCC" >/dev/null || { echo "check_cuda: $NVCC not found" >&2; exit 2; }

# sm_80 (A100) and sm_90 (H100/H200); -Werror all-warnings so that a warning fails CI too.
flags=(-std=c++17 -c -o /dev/null -I csrc --expt-relaxed-constexpr -Werror all-warnings
       -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90)

mapfile -d '' files < <(find csrc -name '*.cu' -print0 | sort -z)
if ((${#files[@]} == 0)); then
  echo "check_cuda: no .cu files under csrc/" >&2
  exit 1
fi

failed=0
for f in "${files[@]}"; do
  if log=$("$NVCC" "${flags[@]}" "$f" 2>&1); then
    echo "ok    $f"
  else
    echo "FAIL  $f"
    printf '%s\n' "$log" | sed 's/^/      /' >&2
    failed=$((failed + 1))
  fi
done

if ((failed > 0)); then
  echo "check_cuda: $failed of ${#files[@]} file(s) failed" >&2
  exit 1
fi
