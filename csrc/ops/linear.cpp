#include "ops/linear.h"

#include <ATen/ATen.h>

#include "ops/dispatch.h"

namespace mtad::ops {

// Above this many rows the product is compute-bound and the BLAS GEMM wins.
constexpr int64_t kStreamingMaxRows = 16;

at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  check_float(x, "linear", "x");
  check_like(w, x, "linear", "w");
  TORCH_CHECK(x.dim() == 2 && w.dim() == 2, "linear: x must be [T, K] and w [N, K]");
  TORCH_CHECK(x.size(1) == w.size(1), "linear: x has ", x.size(1), " columns but w has ", w.size(1));
  if (b.defined()) {
    check_like(b, x, "linear", "b");
    TORCH_CHECK(b.dim() == 1 && b.size(0) == w.size(0), "linear: b must be [", w.size(0), "]");
  }
  const int64_t T = x.size(0), K = x.size(1), N = w.size(0);
  if (cpu_f32(x) && T <= kStreamingMaxRows) {
    at::Tensor xc = x.contiguous();
    at::Tensor y = at::empty({T, N}, x.options());
    cpu::linear_f32(xc.data_ptr<float>(), w.data_ptr<float>(), b.defined() ? b.data_ptr<float>() : nullptr,
                    y.data_ptr<float>(), T, K, N);
    return y;
  }
  // GPU (cuBLAS) and long CPU prefill (MKL) use the vendor GEMM.
  return b.defined() ? at::addmm(b, x, w.t()) : at::mm(x, w.t());
}

}  // namespace mtad::ops
