#include "ops/linear.h"

#include <ATen/ATen.h>

#include "ops/dispatch.h"

namespace mtad::ops {

// Rows of x per pass of the streaming kernel: the weights are re-read once per block
// (from cache for all but the largest matrices). On this kind of CPU the streaming
// kernel beats the BLAS GEMM at every T measured: a T = 32 tree verification costs
// 1.02x a single-token step with it, and the GEMM path cost 39x.
constexpr int64_t kBlockRows = 32;

at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  check_float(x, "linear", "x");
  check_float(w, "linear", "w");
  TORCH_CHECK(x.dim() == 2 && w.dim() == 2, "linear: x must be [T, K] and w [N, K]");
  TORCH_CHECK(x.size(1) == w.size(1), "linear: x has ", x.size(1), " columns but w has ", w.size(1));
  TORCH_CHECK(w.device() == x.device(), "linear: w is on ", w.device(), " but x is on ", x.device());
  TORCH_CHECK(w.is_contiguous(), "linear: w must be contiguous");
  const bool mixed = x.device().is_cpu() && x.scalar_type() == at::kFloat && w.scalar_type() != at::kFloat;
  TORCH_CHECK(mixed || w.scalar_type() == x.scalar_type(), "linear: w has dtype ", w.scalar_type(),
              " but x has ", x.scalar_type());
  if (b.defined()) {
    check_like(b, x, "linear", "b");
    TORCH_CHECK(b.dim() == 1 && b.size(0) == w.size(0), "linear: b must be [", w.size(0), "]");
  }
  const int64_t T = x.size(0), K = x.size(1), N = w.size(0);
  if (x.device().is_cpu() && x.scalar_type() == at::kFloat) {
    at::Tensor xc = x.contiguous();
    at::Tensor y = at::empty({T, N}, x.options());
    const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
    for (int64_t t0 = 0; t0 < T; t0 += kBlockRows) {
      const int64_t rows = std::min(kBlockRows, T - t0);
      const float* xp = xc.data_ptr<float>() + t0 * K;
      float* yp = y.data_ptr<float>() + t0 * N;
      switch (w.scalar_type()) {
        case at::kFloat: cpu::linear_f32(xp, w.data_ptr<float>(), bp, yp, rows, K, N); break;
        case at::kHalf: cpu::linear_f16(xp, w.data_ptr<at::Half>(), bp, yp, rows, K, N); break;
        default: cpu::linear_bf16(xp, w.data_ptr<at::BFloat16>(), bp, yp, rows, K, N); break;
      }
    }
    return y;
  }
  // GPU: cuBLAS.
  return b.defined() ? at::addmm(b, x, w.t()) : at::mm(x, w.t());
}

}  // namespace mtad::ops
