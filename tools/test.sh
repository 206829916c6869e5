#!/usr/bin/env bash
# Installs mtad with its test dependencies on a fresh machine, then runs the checks:
# ruff, the nvcc compile-only check of every CUDA source and the CUDA build of the whole
# extension (when nvcc is present: tools/check_cuda_build.sh), and the pytest suite.
# Downloads and builds are cached outside the repository (~/.cache/pip, ~/.cache/ccache,
# ~/.cache/mtad-ci for the CUDA torch, $MTAD_CACHE or ~/.cache/mtad for the default model).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# ccache makes rebuilds of the extension after the first one take seconds.
if ! command -v ccache >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && apt-get install -y -qq ccache) >/dev/null 2>&1 || echo "note: ccache not installed; building without it"
fi
# Paths relative to the checkout in ccache's keys, so that fresh clones hit the cache too.
export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
# Build requirements first, then the package without build isolation: the extension is
# compiled against the torch that the tests import, and ccache sees stable paths.
python3 -m pip install -q "torch==2.13.0" "cmake>=3.22" ninja "nlohmann-json>=3.11" "setuptools>=77" wheel
python3 -m pip install -q --no-build-isolation -e ".[test]"

python3 -m ruff check python mtad_ext tests bench tools
if command -v nvcc >/dev/null 2>&1; then
  # Every .cu file with -Werror (seconds), then the whole extension with CUDA on, linked
  # against a CUDA torch in its own venv (~/.cache/mtad-ci/cuda-venv; the module it makes is
  # imported by tests/build/test_cuda_module.py below). MTAD_CUDA_BUILD=0 skips the latter.
  bash tools/check_cuda.sh
  if [ "${MTAD_CUDA_BUILD:-1}" != 0 ]; then
    bash tools/check_cuda_build.sh
  fi
else
  echo "nvcc not found: skipping the CUDA compile and build checks"
fi
# The soak tests generate 3,000 tokens per method here (CI's time budget); run
# tests/reliability/test_soak.py alone for the 10,000-token default.
MTAD_SOAK_TOKENS="${MTAD_SOAK_TOKENS:-3000}" python3 -m pytest -q "$@"
# The CUDA kernels under the CPU emulation ran above (tests/cuda_emu, thread order forward);
# here again under AddressSanitizer + UBSan in two more orders, on every 4th case.
if [ -f "$(c++ -print-file-name=libasan.so 2>/dev/null)" ]; then
  bash tools/cuda_emu/run_sanitized.sh reverse random:1
else
  echo "libasan not found: skipping the sanitized CUDA emulation run"
fi

# Reliability (issue 30; README "Reliability"): a 1-minute fuzz smoke run over every target
# (C++ ones with clang's libFuzzer, Python ones with atheris), then the native-facing tests
# on an AddressSanitizer + UBSan build of the extension (tools/sanitize.sh, build/asan;
# ccache makes its rebuilds quick). MTAD_RELIABILITY=0 skips both.
if [ "${MTAD_RELIABILITY:-1}" != 0 ]; then
  if ! command -v clang++ >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && apt-get install -y -qq clang libclang-rt-14-dev) >/dev/null 2>&1 || echo "note: clang not installed"
  fi
  python3 -m pip install -q atheris || echo "note: atheris not installed"
  targets=()
  python3 -c "import atheris" 2>/dev/null && targets+=(tokenizer decoder)
  if command -v clang++ >/dev/null 2>&1; then bash fuzz/build.sh; targets+=(config safetensors trigram); fi
  if [ "${#targets[@]}" -gt 0 ]; then
    bash fuzz/run.sh seconds 12 "${targets[@]}"
  else
    echo "neither clang nor atheris: skipping the fuzz smoke run"
  fi
  if [ -f "$(c++ -print-file-name=libasan.so 2>/dev/null)" ]; then
    bash tools/sanitize.sh
  else
    echo "libasan not found: skipping the sanitizer run"
  fi
fi
