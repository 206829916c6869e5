// Kernels of ops/kv_compact.h (layout: ops/detail/common.h).
#pragma once

#include <cstdint>

#include "ops/detail/common.h"

namespace mtad::ops::cpu {
// k, v: L layers of C rows of row_bytes each; see ops/kv_compact.h. slots are validated.
void kv_compact(void* k, void* v, int64_t L, int64_t C, int64_t row_bytes, int64_t prefix, const int64_t* slots,
                int64_t A);
}  // namespace mtad::ops::cpu

#ifdef MTAD_CUDA_DECLS
namespace mtad::cuda {
// The same on the device (slots on the device too).
void kv_compact(void* k, void* v, int64_t L, int64_t C, int64_t row_bytes, int64_t prefix, const int64_t* slots,
                int64_t A, cudaStream_t stream);
}  // namespace mtad::cuda
#endif
