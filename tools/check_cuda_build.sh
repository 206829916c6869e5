#!/usr/bin/env bash
# Configures, compiles and links the whole extension with CUDA on (MTAD_CUDA=1), against a
# CUDA build of torch, on a machine that needs no GPU: CI's check that the MTAD_WITH_CUDA
# host code and the kernels build together. Then imports the module built that way: the
# import must work without a GPU, and only a CUDA call may fail (tests/build/test_cuda_module.py
# says more, in the normal pytest run).
#
# The CUDA torch lives in its own virtual environment outside the checkout (the CPU torch
# stays the default): $MTAD_CUDA_VENV, default ~/.cache/mtad-ci/cuda-venv, made on first use
# with `pip install torch==$MTAD_CUDA_TORCH` (default 2.14.1, a CUDA 13.0 build: ~5.5 GB).
# The build folder is build/cuda-py<ver> (never the CPU build's); the module and the Python
# package around it land in build/cuda-module/ (what the import test loads).
# Needs nvcc of torch's CUDA version (NVCC or CUDACXX names it; default nvcc on PATH).
# Measured on 2 shared cores (README "Building"): cold ~9 min of CPU (19-29 min wall under
# load), from an empty build folder with ccache warm 33 s, nothing changed 20 s.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

VENV="${MTAD_CUDA_VENV:-$HOME/.cache/mtad-ci/cuda-venv}"
TORCH_SPEC="torch==${MTAD_CUDA_TORCH:-2.14.1}"
NVCC="${NVCC:-${CUDACXX:-$(command -v nvcc || true)}}"
if [ -z "$NVCC" ] || ! [ -x "$NVCC" ]; then
  echo "check_cuda_build: nvcc not found (set NVCC): skipping the CUDA build" >&2
  exit 0
fi

start=$(date +%s)
if ! [ -x "$VENV/bin/python" ]; then
  echo "check_cuda_build: making $VENV ($TORCH_SPEC, a CUDA build of torch)"
  python3 -m venv "$VENV"
fi
py="$VENV/bin/python"
if ! "$py" -c "import torch, sys; sys.exit(torch.version.cuda is None)" 2>/dev/null; then
  "$py" -m pip install -q "$TORCH_SPEC" "cmake>=3.22" ninja "nlohmann-json>=3.11" "setuptools>=77" wheel numpy
fi
torch_cuda=$("$py" -c "import torch; print(torch.__version__, torch.version.cuda)")
echo "check_cuda_build: torch $torch_cuda, nvcc $("$NVCC" --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')"

tag=$("$py" -c 'import sys; print(f"py{sys.version_info.major}{sys.version_info.minor}")')
out="$ROOT/build/cuda-module"
rm -rf "$out"
mkdir -p "$out"
# setup.py's own path (MTAD_CUDA=1: its refusals apply), into its own build folder, the
# module copied to $out rather than into the checkout (where the CPU module lives).
# No GPU to ask: the architectures are named (setup.py / CMakeLists.txt would too).
export CCACHE_BASEDIR="$ROOT" CCACHE_NOHASHDIR=1
MTAD_CUDA=1 MTAD_BUILD_DIR="$ROOT/build/cuda-$tag" CUDACXX="$NVCC" \
  TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-8.0;8.6;8.9;9.0}" MTAD_BUILD_JOBS="${MTAD_BUILD_JOBS:-2}" \
  "$py" setup.py -q build_ext --build-lib "$out" --build-temp "$ROOT/build/cuda-$tag/setuptools"
cp mtad_ext/*.py "$out/mtad_ext/"
built=$(date +%s)

# Every CUDA source went in, and the module imports without a GPU.
launchers=$(nm -C "$out"/mtad_ext/_C*.so | grep -c "mtad::cuda::" || true)
if ((launchers == 0)); then
  echo "check_cuda_build: the module holds no CUDA kernels (mtad::cuda::)" >&2
  exit 1
fi
PYTHONPATH="$out" "$py" - <<'EOF'
import torch
import mtad_ext
assert torch.version.cuda is not None
print(f"check_cuda_build: import ok (torch {torch.__version__}, cuda available: {torch.cuda.is_available()})")
EOF
echo "check_cuda_build: ok in $((built - start)) s build + $(($(date +%s) - built)) s checks"
