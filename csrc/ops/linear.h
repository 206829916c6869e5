// y[T, N] = x[T, K] @ w[N, K]^T (+ b[N]). Weights in the Hugging Face [out, in] layout.
// On the CPU, x and b are float32 and w may be float32, float16 or bfloat16 (half the
// bytes to stream; widened to float32 inside the kernel).
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

namespace mtad::ops {
at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b /*undefined: none*/);
namespace cpu {
// Streams each weight row once for all T rows of x (T small: decode and tree verify).
void linear_f32(const float* x, const float* w, const float* b, float* y, int64_t T, int64_t K, int64_t N);
void linear_f16(const float* x, const c10::Half* w, const float* b, float* y, int64_t T, int64_t K, int64_t N);
void linear_bf16(const float* x, const c10::BFloat16* w, const float* b, float* y, int64_t T, int64_t K, int64_t N);
}  // namespace cpu
}  // namespace mtad::ops
