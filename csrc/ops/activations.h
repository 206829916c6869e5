// Feed-forward activations: SwiGLU's silu(gate) * up (Llama) and ReLU (OPT).
#pragma once
#include <ATen/core/Tensor.h>

namespace mtad::ops {
at::Tensor silu_mul(const at::Tensor& gate, const at::Tensor& up);
void relu_(at::Tensor& x);
namespace cpu {
void silu_mul_f32(const float* gate, const float* up, float* out, int64_t n);
void relu_f32(float* x, int64_t n);
}
}  // namespace mtad::ops
