#include "ops/norms.h"

#include <ATen/ATen.h>

#include "ops/dispatch.h"

namespace mtad::ops {

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps) {
  check_float(x, "rms_norm", "x");
  check_like(w, x, "rms_norm", "w");
  TORCH_CHECK(x.dim() == 2 && w.dim() == 1 && w.size(0) == x.size(1), "rms_norm: x must be [T, H] and w [H]");
  at::Tensor xc = x.contiguous();
  at::Tensor y = at::empty_like(xc);
  const int64_t T = x.size(0), H = x.size(1);
  if (cpu_f32(x)) {
    cpu::rms_norm_f32(xc.data_ptr<float>(), w.data_ptr<float>(), y.data_ptr<float>(), T, H, float(eps));
    return y;
  }
#ifdef MTAD_WITH_CUDA
  if (x.is_cuda()) {
    const c10::cuda::CUDAGuard guard(x.device());
    cuda::rms_norm(cuda_dtype(x), xc.data_ptr(), w.data_ptr(), y.data_ptr(), T, H, float(eps), stream_of(x));
    return y;
  }
#endif
  no_kernel("rms_norm", x);
}

at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, double eps) {
  check_float(x, "layer_norm", "x");
  TORCH_CHECK(x.dim() == 2, "layer_norm: x must be [T, H]");
  for (const at::Tensor* p : {&w, &b}) {
    if (!p->defined()) continue;
    check_like(*p, x, "layer_norm", "weight/bias");
    TORCH_CHECK(p->dim() == 1 && p->size(0) == x.size(1), "layer_norm: weight and bias must be [H]");
  }
  at::Tensor xc = x.contiguous();
  at::Tensor y = at::empty_like(xc);
  const int64_t T = x.size(0), H = x.size(1);
  if (cpu_f32(x)) {
    cpu::layer_norm_f32(xc.data_ptr<float>(), w.defined() ? w.data_ptr<float>() : nullptr,
                        b.defined() ? b.data_ptr<float>() : nullptr, y.data_ptr<float>(), T, H, float(eps));
    return y;
  }
#ifdef MTAD_WITH_CUDA
  if (x.is_cuda()) {
    const c10::cuda::CUDAGuard guard(x.device());
    cuda::layer_norm(cuda_dtype(x), xc.data_ptr(), w.defined() ? w.data_ptr() : nullptr,
                     b.defined() ? b.data_ptr() : nullptr, y.data_ptr(), T, H, float(eps), stream_of(x));
    return y;
  }
#endif
  no_kernel("layer_norm", x);
}

}  // namespace mtad::ops
