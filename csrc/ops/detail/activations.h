// Kernels of ops/activations.h (layout: ops/detail/common.h).
#pragma once

#include <cstdint>

#include "ops/detail/common.h"

namespace mtad::ops::cpu {
void silu_mul_f32(const float* gate, const float* up, float* out, int64_t n);
void relu_f32(float* x, int64_t n);
}  // namespace mtad::ops::cpu

#ifdef MTAD_CUDA_DECLS
namespace mtad::cuda {
void silu_mul(DType dt, const void* gate, const void* up, void* out, int64_t n, cudaStream_t stream);
void relu(DType dt, void* x, int64_t n, cudaStream_t stream);
}  // namespace mtad::cuda
#endif
