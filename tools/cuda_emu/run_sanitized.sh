#!/usr/bin/env bash
# Runs the emulated CUDA kernel tests (tests/cuda_emu) with the kernels, the emulation and
# the harness built under AddressSanitizer + UBSan, once per thread order.
#   tools/cuda_emu/run_sanitized.sh [ORDER ...] [-- PYTEST ARGS (default: tests/cuda_emu)]
# ORDER: forward, reverse or random[:seed]; default: reverse random:1. Any ASan or UBSan
# report aborts the run (non-zero exit). MTAD_EMU_SUBSET (default 4) runs every N-th case of
# each test and leaves out the heavy ones (MTAD_EMU_SUBSET= for all of them).
set -euo pipefail
cd "$(dirname "$0")/../.."

orders=()
while (($#)) && [[ "$1" != "--" ]]; do orders+=("$1"); shift; done
(($#)) && shift
((${#orders[@]})) || orders=(reverse random:1)
args=("$@")
((${#args[@]})) || args=(tests/cuda_emu)

cxx="${CXX:-c++}"
asan="$("$cxx" -print-file-name=libasan.so)"
[[ -f "$asan" ]] || { echo "run_sanitized: $cxx has no libasan.so" >&2; exit 2; }
# libstdc++ right after the ASan runtime: python itself does not link it, and ASan must find
# the real __cxa_throw when it starts, or the first C++ exception (torch's or a
# KernelError) fails its interceptor.
stdcxx="$(readlink -f "$("$cxx" -print-file-name=libstdc++.so)")"
# Build (or find in the cache) outside the preloaded process: the compiler must not run
# under the ASan runtime.
python3 tools/cuda_emu/build.py --sanitize >/dev/null

for order in "${orders[@]}"; do
  echo "== tests/cuda_emu under ASan + UBSan, thread order $order"
  MTAD_EMU_SANITIZE=1 MTAD_EMU_ORDER="$order" MTAD_EMU_SUBSET="${MTAD_EMU_SUBSET-4}" LD_PRELOAD="$asan $stdcxx" \
    ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:allocator_may_return_null=1" \
    UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    python3 -m pytest -q -p no:cacheprovider "${args[@]}"
done
