// Kernels of ops/norms.h (layout: ops/detail/common.h).
#pragma once

#include <cstdint>

#include "ops/detail/common.h"

namespace mtad::ops::cpu {
void rms_norm_f32(const float* x, const float* w, float* y, int64_t T, int64_t H, float eps);
// w and b may be null (no affine parameters).
void layer_norm_f32(const float* x, const float* w, const float* b, float* y, int64_t T, int64_t H, float eps);
}  // namespace mtad::ops::cpu

#ifdef MTAD_CUDA_DECLS
namespace mtad::cuda {
void rms_norm(DType dt, const void* x, const void* w, void* y, int64_t rows, int64_t dim, float eps,
              cudaStream_t stream);
// w and b may be null (no affine parameters).
void layer_norm(DType dt, const void* x, const void* w, const void* b, void* y, int64_t rows, int64_t dim,
                float eps, cudaStream_t stream);
}  // namespace mtad::cuda
#endif
