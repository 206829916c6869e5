// Rotary position embedding, applied in place to x [T, heads, D] (rotate-half pairing:
// element i pairs with i + D/2, as Hugging Face Llama does). inv_freq is float32 [D/2].
#pragma once
#include <ATen/core/Tensor.h>

#include "ops/detail/rope.h"

namespace mtad::ops {
void rope_(at::Tensor& x, const at::Tensor& positions, const at::Tensor& inv_freq);
}  // namespace mtad::ops
