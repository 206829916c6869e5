#include "ops/rope.h"

#include "ops/dispatch.h"

namespace mtad::ops {

void rope_(at::Tensor& x, const at::Tensor& positions, const at::Tensor& inv_freq) {
  check_float(x, "rope", "x");
  TORCH_CHECK(x.dim() == 3 && x.is_contiguous(), "rope: x must be a contiguous [T, heads, D]");
  const int64_t T = x.size(0), heads = x.size(1), D = x.size(2);
  TORCH_CHECK(D % 2 == 0, "rope: head dim must be even");
  TORCH_CHECK(positions.scalar_type() == at::kLong && positions.dim() == 1 && positions.size(0) == T &&
                  positions.device() == x.device() && positions.is_contiguous(),
              "rope: positions must be int64 [T] on the device of x");
  TORCH_CHECK(inv_freq.scalar_type() == at::kFloat && inv_freq.numel() == D / 2 &&
                  inv_freq.device() == x.device() && inv_freq.is_contiguous(),
              "rope: inv_freq must be float32 [D/2] on the device of x");
  if (cpu_f32(x)) {
    cpu::rope_f32(x.data_ptr<float>(), positions.data_ptr<int64_t>(), inv_freq.data_ptr<float>(), T, heads, D);
    return;
  }
#ifdef MTAD_WITH_CUDA
  if (x.is_cuda()) {
    const c10::cuda::CUDAGuard guard(x.device());
    cuda::rope(cuda_dtype(x), x.data_ptr(), positions.data_ptr<int64_t>(), inv_freq.data_ptr<float>(), T, heads, D,
               stream_of(x));
    return;
  }
#endif
  no_kernel("rope", x);
}

}  // namespace mtad::ops
