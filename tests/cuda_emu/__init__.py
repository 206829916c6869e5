"""Tests that run the unmodified CUDA kernels of csrc/ops/cuda under the CPU emulation of
tools/cuda_emu and hold each to its CPU twin."""
