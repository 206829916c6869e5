// Included first by every source preprocess.py writes: the emulated TUs are compiled as
// the device pass of nvcc would see them (__CUDACC__ and __CUDA_ARCH__ defined), so that
// headers shared with the CPU build pick their device code.
#pragma once

#define __CUDACC__ 1
#define __CUDA_ARCH__ 800
#define CUDA_EMU 1

#include "cuda_emu/emu.h"
#include "cuda_emu/half.h"
