// Kernels of ops/tree_attention.h (layout: ops/detail/common.h).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "ops/detail/common.h"

namespace mtad::ops::cpu {

// The masked slots each query row attends to: row t's are idx[off[t], off[t + 1]) (j in [0, M)).
// Built once per forward, so each (row, head) walks only its own slots, not the whole mask.
struct MaskRows {
  std::vector<int32_t> idx;
  std::vector<int64_t> off;
};
MaskRows mask_rows(const bool* mask, int64_t T, int64_t M);

// Query heads of one kv group handled together (their key and value rows read once).
constexpr int64_t kMaxGroup = 8;
// Floats of the scores buffer one caller of tree_attention_tasks_f32 needs: slots x heads
// walked together.
inline int64_t scores_floats(int64_t slots, int64_t H, int64_t KVH) {
  return slots * std::min<int64_t>(H / KVH, kMaxGroup);
}

void tree_attention_f32(const float* q, const float* k, const float* v, const bool* mask, float* out, int64_t T,
                        int64_t M, int64_t H, int64_t KVH, int64_t D, int64_t prefix, float scale);
// Tasks [task0, task1) of tree_attention_f32, task = t * H + h (query row t, head h); rows:
// mask_rows of the mask, or null for causal. scores: room for scores_floats(prefix + M, H,
// KVH) floats. For callers that split the tasks themselves.
void tree_attention_tasks_f32(const float* q, const float* k, const float* v, const MaskRows* rows, float* out,
                              int64_t H, int64_t KVH, int64_t D, int64_t prefix, float scale, int64_t task0,
                              int64_t task1, float* scores);

}  // namespace mtad::ops::cpu

#ifdef MTAD_CUDA_DECLS
namespace mtad::cuda {
// mask [T, M] may be null (causal, M == T). Accumulates in float32.
void tree_attention(DType dt, const void* q, const void* k, const void* v, const bool* mask, void* out,
                    int64_t T, int64_t M, int64_t H, int64_t KVH, int64_t D, int64_t prefix, float scale,
                    cudaStream_t stream);
}  // namespace mtad::cuda
#endif
