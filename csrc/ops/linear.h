// y[T, N] = x[T, K] @ w[N, K]^T (+ b[N]). Weights in the Hugging Face [out, in] layout.
#pragma once
#include <ATen/core/Tensor.h>

namespace mtad::ops {
at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b /*undefined: none*/);
namespace cpu {
// Streams each weight row once for all T rows of x (T small: decode and tree verify).
void linear_f32(const float* x, const float* w, const float* b, float* y, int64_t T, int64_t K, int64_t N);
}
}  // namespace mtad::ops
