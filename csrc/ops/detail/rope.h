// Kernels of ops/rope.h (layout: ops/detail/common.h).
#pragma once

#include <cstdint>

#include "ops/detail/common.h"

namespace mtad::ops::cpu {
void rope_f32(float* x, const int64_t* positions, const float* inv_freq, int64_t T, int64_t heads, int64_t D);
}  // namespace mtad::ops::cpu

#ifdef MTAD_CUDA_DECLS
namespace mtad::cuda {
// x: [T, heads, D] contiguous, rotated in place; inv_freq float32 [D/2].
void rope(DType dt, void* x, const int64_t* positions, const float* inv_freq, int64_t T, int64_t heads,
          int64_t D, cudaStream_t stream);
}  // namespace mtad::cuda
#endif
