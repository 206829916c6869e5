#include "ops/tree_attention.h"

#include <ATen/ATen.h>

#include "ops/dispatch.h"

namespace mtad::ops {

at::Tensor tree_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t prefix,
                          const at::Tensor& mask, double scale) {
  check_float(q, "tree_attention", "q");
  TORCH_CHECK(q.dim() == 3 && k.dim() == 3 && v.dim() == 3, "tree_attention: q must be [T, H, D], k and v [C, KVH, D]");
  check_like(k, q, "tree_attention", "k");
  check_like(v, q, "tree_attention", "v");
  TORCH_CHECK(k.sizes() == v.sizes(), "tree_attention: k and v differ in shape");
  const int64_t T = q.size(0), H = q.size(1), D = q.size(2), KVH = k.size(1);
  TORCH_CHECK(k.size(2) == D, "tree_attention: q has head dim ", D, " but k has ", k.size(2));
  TORCH_CHECK(D <= 256, "tree_attention: head dim ", D, " is above the supported 256");
  TORCH_CHECK(H % KVH == 0, "tree_attention: ", H, " query heads are not a multiple of ", KVH, " kv heads");
  const int64_t M = mask.defined() ? mask.size(-1) : T;
  if (mask.defined()) {
    TORCH_CHECK(mask.scalar_type() == at::kBool && mask.dim() == 2 && mask.size(0) == T && M >= T &&
                    mask.device() == q.device() && mask.is_contiguous(),
                "tree_attention: mask must be a contiguous bool [T, M >= T] on the device of q");
  }
  TORCH_CHECK(prefix >= 0 && prefix + M <= k.size(0), "tree_attention: prefix ", prefix, " + ", M,
              " masked slots exceed the cache's ", k.size(0), " slots");
  at::Tensor qc = q.contiguous();
  at::Tensor out = at::empty({T, H * D}, q.options());
  const bool* m = mask.defined() ? mask.data_ptr<bool>() : nullptr;
  if (cpu_f32(q)) {
    cpu::tree_attention_f32(qc.data_ptr<float>(), k.data_ptr<float>(), v.data_ptr<float>(), m,
                            out.data_ptr<float>(), T, M, H, KVH, D, prefix, float(scale));
    return out;
  }
#ifdef MTAD_WITH_CUDA
  if (q.is_cuda()) {
    const c10::cuda::CUDAGuard guard(q.device());
    cuda::tree_attention(cuda_dtype(q), qc.data_ptr(), k.data_ptr(), v.data_ptr(), m, out.data_ptr(), T, M, H, KVH,
                         D, prefix, float(scale), stream_of(q));
    return out;
  }
#endif
  no_kernel("tree_attention", q);
}

}  // namespace mtad::ops
