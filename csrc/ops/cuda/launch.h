// Raw-pointer launchers of the CUDA kernels. The .cu files include only CUDA headers and
// this file, so they compile with nvcc alone; ops/*.cpp check tensors and call these.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace mtad::cuda {

enum class DType { F32, F16, BF16 };

void rms_norm(DType dt, const void* x, const void* w, void* y, int64_t rows, int64_t dim, float eps,
              cudaStream_t stream);
// w and b may be null (no affine parameters).
void layer_norm(DType dt, const void* x, const void* w, const void* b, void* y, int64_t rows, int64_t dim,
                float eps, cudaStream_t stream);
// x: [T, heads, D] contiguous, rotated in place; inv_freq float32 [D/2].
void rope(DType dt, void* x, const int64_t* positions, const float* inv_freq, int64_t T, int64_t heads,
          int64_t D, cudaStream_t stream);
// See ops/tree_attention.h; mask [T, M] may be null (causal, M == T). Accumulates in float32.
void tree_attention(DType dt, const void* q, const void* k, const void* v, const bool* mask, void* out,
                    int64_t T, int64_t M, int64_t H, int64_t KVH, int64_t D, int64_t prefix, float scale,
                    cudaStream_t stream);
void silu_mul(DType dt, const void* gate, const void* up, void* out, int64_t n, cudaStream_t stream);
void relu(DType dt, void* x, int64_t n, cudaStream_t stream);

}  // namespace mtad::cuda

namespace mtad::cuda {

// Decoding kernels (see ops/sampling.h, beam_step.h, verify.h, kv_compact.h for the
// exact semantics; inputs float32 unless noted, all pointers on the device).
void normalize(const float* logits, float* out, int64_t R, int64_t V, float temperature, int64_t top_k,
               float top_p, cudaStream_t stream);
void sample(const float* logprobs, int64_t* out, int64_t R, int64_t V, uint64_t seed, uint64_t offset,
            cudaStream_t stream);
// kv rows: elem_bytes per element; copies rows of row_bytes = KVH * D * elem_bytes.
void kv_compact(void* k, void* v, int64_t L, int64_t C, int64_t row_bytes, int64_t prefix, const int64_t* slots,
                int64_t A, cudaStream_t stream);

}  // namespace mtad::cuda
