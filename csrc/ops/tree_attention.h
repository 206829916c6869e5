// Attention of T new tokens against a token-major cache layer under a tree mask.
//   q:        [T, H, D]
//   k, v:     [C, KVH, D], the new tokens' rows already written at [prefix + M - T, prefix + M)
//   mask:     bool [T, M] or undefined (causal, M = T). Token i attends to every slot before
//             `prefix` and to slot prefix + j where mask[i][j]. The masked region holds the
//             new tokens last, after any tree nodes cached by earlier calls (the draft's
//             beams run depth by depth as rows of one tree).
// Returns [T, H * D]. H must be a multiple of KVH (grouped-query attention).
#pragma once
#include <ATen/core/Tensor.h>

#include "ops/detail/tree_attention.h"

namespace mtad::ops {
at::Tensor tree_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t prefix,
                          const at::Tensor& mask, double scale);
}  // namespace mtad::ops
