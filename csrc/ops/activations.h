// Feed-forward activations: SwiGLU's silu(gate) * up (Llama) and ReLU (OPT).
#pragma once
#include <ATen/core/Tensor.h>

#include "ops/detail/activations.h"

namespace mtad::ops {
at::Tensor silu_mul(const at::Tensor& gate, const at::Tensor& up);
void relu_(at::Tensor& x);
}  // namespace mtad::ops
