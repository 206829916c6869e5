// After acceptance, moves the accepted path's K/V rows of every layer to the slots right
// after the prefix in one call (algorithms.md 3.4).
#pragma once
#include <ATen/core/Tensor.h>

#include "ops/detail/kv_compact.h"

namespace mtad::ops {

// k, v:  [L, C, KVH, D] (a KVCache's tensors)
// slots: int64 [A], strictly increasing cache slots, each >= prefix + its index
// For i in [0, A): k[:, prefix + i] = k[:, slots[i]] (and v). Rows already in place are
// skipped. The caller sets the cache length to prefix + A.
void kv_compact(at::Tensor& k, at::Tensor& v, int64_t prefix, const at::Tensor& slots);

}  // namespace mtad::ops
