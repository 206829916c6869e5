#include "ops/linear.h"

#include <ATen/ATen.h>

#include "ops/dispatch.h"

namespace mtad::ops {

namespace cpu {
Mat mat_of(const at::Tensor& w, const at::Tensor& b) {
  Mat m;
  m.w = w.data_ptr();
  m.type = w.scalar_type() == at::kFloat ? WType::F32 : w.scalar_type() == at::kHalf ? WType::F16 : WType::BF16;
  m.rows = w.size(0);
  m.cols = w.size(1);
  m.bias = b.defined() ? b.data_ptr<float>() : nullptr;
  return m;
}
}  // namespace cpu

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
  const int64_t T = x.size(0), N = w.size(0);
  if (x.device().is_cpu() && x.scalar_type() == at::kFloat) {
    at::Tensor xc = x.contiguous();
    at::Tensor y = at::empty({T, N}, x.options());
    cpu::matvec(xc.data_ptr<float>(), T, cpu::mat_of(w, b), cpu::Epilogue::kStore, y.data_ptr<float>(), N, nullptr,
                0);
    return y;
  }
  // GPU: cuBLAS.
  return b.defined() ? at::addmm(b, x, w.t()) : at::mm(x, w.t());
}

}  // namespace mtad::ops
