#include "ops/kv_compact.h"

#include <ATen/ATen.h>

#include "ops/dispatch.h"
#include "ops/to_host.h"

namespace mtad::ops {

void kv_compact(at::Tensor& k, at::Tensor& v, int64_t prefix, const at::Tensor& slots) {
  TORCH_CHECK(k.defined() && v.defined(), "kv_compact: k and v must be defined");
  TORCH_CHECK(k.dim() == 4, "kv_compact: k must be [L, C, KVH, D], got ", k.sizes());
  TORCH_CHECK(v.sizes() == k.sizes(), "kv_compact: v has shape ", v.sizes(), " but k has ", k.sizes());
  TORCH_CHECK(v.device() == k.device() && v.scalar_type() == k.scalar_type(), "kv_compact: v is ", v.device(),
              " / ", v.scalar_type(), " but k is ", k.device(), " / ", k.scalar_type());
  TORCH_CHECK(k.is_contiguous() && v.is_contiguous(), "kv_compact: k and v must be contiguous");
  TORCH_CHECK(k.numel() == 0 || k.data_ptr() != v.data_ptr(), "kv_compact: k and v are the same tensor");
  TORCH_CHECK(slots.defined() && slots.scalar_type() == at::kLong && slots.dim() == 1,
              "kv_compact: slots must be int64 [A]");
  TORCH_CHECK(slots.device().is_cpu() || slots.device() == k.device(), "kv_compact: slots are on ",
              slots.device(), " but k is on ", k.device());
  const int64_t L = k.size(0), C = k.size(1), A = slots.size(0);
  TORCH_CHECK(prefix >= 0 && prefix <= C, "kv_compact: prefix ", prefix, " is outside the cache's ", C, " slots");

  // Validation reads the slots on the host: host slots cost nothing (the decoders pass those),
  // device slots one counted read.
  const at::Tensor host = slots.is_cpu() ? slots.contiguous() : to_host(slots);
  const int64_t* s = host.data_ptr<int64_t>();
  for (int64_t i = 0; i < A; ++i) {
    TORCH_CHECK(s[i] >= prefix + i, "kv_compact: slots[", i, "] = ", s[i], " is below prefix + ", i, " = ",
                prefix + i, " (slots must be increasing and at or after their destination)");
    TORCH_CHECK(s[i] < C, "kv_compact: slots[", i, "] = ", s[i], " is outside the cache's ", C, " slots");
    TORCH_CHECK(i == 0 || s[i] > s[i - 1], "kv_compact: slots must be strictly increasing, but slots[", i,
                "] = ", s[i], " follows ", s[i - 1]);
  }
  if (A == 0 || k.numel() == 0) return;
  const int64_t row_bytes = k.numel() / (L * C) * int64_t(k.element_size());

  if (k.device().is_cpu()) {
    cpu::kv_compact(k.data_ptr(), v.data_ptr(), L, C, row_bytes, prefix, s, A);
    return;
  }
#ifdef MTAD_WITH_CUDA
  if (k.is_cuda()) {
    const c10::cuda::CUDAGuard guard(k.device());
    const at::Tensor dev = slots.is_cuda() ? slots.contiguous() : host.to(k.device());
    cuda::kv_compact(k.data_ptr(), v.data_ptr(), L, C, row_bytes, prefix, dev.data_ptr<int64_t>(), A,
                     stream_of(k));
    return;
  }
#endif
  no_kernel("kv_compact", k);
}

}  // namespace mtad::ops
