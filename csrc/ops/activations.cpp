#include "ops/activations.h"

#include <ATen/ATen.h>

#include "ops/dispatch.h"

namespace mtad::ops {

at::Tensor silu_mul(const at::Tensor& gate, const at::Tensor& up) {
  check_float(gate, "silu_mul", "gate");
  check_like(up, gate, "silu_mul", "up");
  TORCH_CHECK(gate.sizes() == up.sizes(), "silu_mul: gate and up differ in shape");
  at::Tensor g = gate.contiguous();
  at::Tensor out = at::empty_like(g);
  if (cpu_f32(g)) {
    cpu::silu_mul_f32(g.data_ptr<float>(), up.data_ptr<float>(), out.data_ptr<float>(), g.numel());
    return out;
  }
#ifdef MTAD_WITH_CUDA
  if (g.is_cuda()) {
    const c10::cuda::CUDAGuard guard(g.device());
    cuda::silu_mul(cuda_dtype(g), g.data_ptr(), up.data_ptr(), out.data_ptr(), g.numel(), stream_of(g));
    return out;
  }
#endif
  no_kernel("silu_mul", g);
}

void relu_(at::Tensor& x) {
  check_float(x, "relu", "x");
  TORCH_CHECK(x.is_contiguous(), "relu: x must be contiguous");
  if (cpu_f32(x)) {
    cpu::relu_f32(x.data_ptr<float>(), x.numel());
    return;
  }
#ifdef MTAD_WITH_CUDA
  if (x.is_cuda()) {
    const c10::cuda::CUDAGuard guard(x.device());
    cuda::relu(cuda_dtype(x), x.data_ptr(), x.numel(), stream_of(x));
    return;
  }
#endif
  no_kernel("relu", x);
}

}  // namespace mtad::ops
