#!/usr/bin/env bash
# Compile-only check of every CUDA source under csrc/ (needs nvcc, no GPU): one line per
# file, non-zero exit if any file fails to compile or compiles with a warning. Then, when
# python3 can import torch, a syntax-only pass over the host side of a CUDA build (the
# MTAD_WITH_CUDA branches of csrc/ops/*.cpp) against torch's headers and the toolkit's.
# NVCC overrides the compiler, e.g. NVCC=/usr/local/cuda/bin/nvcc tools/check_cuda.sh;
# CXX the host compiler (default g++).
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
# check LABEL COMMAND...: runs the command, prints "ok" or "FAIL" and the label, counts failures.
check() {
  local label=$1 log
  shift
  if log=$("$@" 2>&1); then
    echo "ok    $label"
  else
    echo "FAIL  $label"
    printf '%s\n' "$log" | sed 's/^/      /' >&2
    failed=$((failed + 1))
  fi
}
for f in "${files[@]}"; do
  check "$f" "$NVCC" "${flags[@]}" "$f"
done

# Host code of a CUDA build. A CPU torch ships the c10/cuda headers but not their
# generated config header, which C10_CUDA_NO_CMAKE_CONFIGURE_FILE skips.
checked=${#files[@]}
if torch_inc=$(python3 -c 'import torch.utils.cpp_extension as c; print(" ".join(c.include_paths()))' 2>/dev/null); then
  # The toolkit's headers where nvcc itself finds them (nvcc may be a wrapper script).
  cuda_inc=$("$NVCC" -v -E -x cu /dev/null -o /dev/null 2>&1 | sed -n 's/.*INCLUDES="-I\([^"]*\)".*/\1/p' | head -1)
  host_flags=(-std=gnu++17 -fsyntax-only -DMTAD_WITH_CUDA -DC10_CUDA_NO_CMAKE_CONFIGURE_FILE -Wall -Wextra
              -Wno-unused-parameter -Werror -I csrc -I "$cuda_inc")
  for d in $torch_inc; do host_flags+=(-isystem "$d"); done
  mapfile -d '' hosts < <(find csrc/ops -maxdepth 1 -name '*.cpp' -print0 | sort -z)
  for f in "${hosts[@]}"; do
    check "$f (MTAD_WITH_CUDA, syntax)" "${CXX:-g++}" "${host_flags[@]}" "$f"
  done
  checked=$((checked + ${#hosts[@]}))
else
  echo "check_cuda: python3 cannot import torch; skipping the host-code check"
fi

if ((failed > 0)); then
  echo "check_cuda: $failed of $checked file(s) failed" >&2
  exit 1
fi
