#include "ops/sampling.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

#include "ops/dispatch.h"

namespace mtad::ops {
namespace {

// The kernels index rows with 32-bit ids (rank keys), so a row holds fewer than 2^31.
constexpr int64_t kMaxVocab = std::numeric_limits<int32_t>::max();

void check_rows(const at::Tensor& t, const char* op, const char* arg) {
  TORCH_CHECK(t.defined(), op, ": ", arg, " is undefined");
  TORCH_CHECK(t.scalar_type() == at::kFloat, op, ": ", arg, " must be float32, got ", t.scalar_type());
  TORCH_CHECK(t.dim() == 2, op, ": ", arg, " must be [R, V], got shape ", t.sizes());
  TORCH_CHECK(t.size(1) < kMaxVocab, op, ": ", arg, " has ", t.size(1), " columns, more than supported");
}

void check_params(const char* op, double temperature, int64_t top_k, double top_p) {
  // The kernels take float; a temperature that overflows float is rejected with the rest.
  TORCH_CHECK(temperature >= 0 && std::isfinite(static_cast<float>(temperature)), op,
              ": temperature must be finite and >= 0 (0 = greedy), got ", temperature);
  TORCH_CHECK(top_k >= 0, op, ": top_k must be >= 0 (0 = keep all), got ", top_k);
  TORCH_CHECK(top_p >= 0 && top_p <= 1, op, ": top_p must be in [0, 1] (0 or 1 = keep all), got ", top_p);
}

}  // namespace

at::Tensor normalize(const at::Tensor& logits, double temperature, int64_t top_k, double top_p) {
  check_rows(logits, "normalize", "logits");
  check_params("normalize", temperature, top_k, top_p);
  const at::Tensor x = logits.contiguous();
  at::Tensor out = at::empty_like(x);
  const int64_t R = x.size(0), V = x.size(1);
  if (R == 0 || V == 0) return out;
  const float T = static_cast<float>(temperature), P = static_cast<float>(top_p);
  if (x.device().is_cpu()) {
    cpu::normalize_f32(x.data_ptr<float>(), out.data_ptr<float>(), R, V, T, top_k, P);
    return out;
  }
#ifdef MTAD_WITH_CUDA
  if (x.is_cuda()) {
    const c10::cuda::CUDAGuard guard(x.device());
    cuda::normalize(x.data_ptr<float>(), out.data_ptr<float>(), R, V, T, top_k, P, stream_of(x));
    return out;
  }
#endif
  no_kernel("normalize", x);
}

at::Tensor sample(const at::Tensor& logprobs, uint64_t seed, uint64_t offset) {
  check_rows(logprobs, "sample", "logprobs");
  const at::Tensor x = logprobs.contiguous();
  const int64_t R = x.size(0), V = x.size(1);
  TORCH_CHECK(V > 0 || R == 0, "sample: logprobs has no columns to draw from");
  at::Tensor out = at::empty({R}, x.options().dtype(at::kLong));
  if (R == 0) return out;
  if (x.device().is_cpu()) {
    cpu::sample_f32(x.data_ptr<float>(), out.data_ptr<int64_t>(), R, V, seed, offset);
    return out;
  }
#ifdef MTAD_WITH_CUDA
  if (x.is_cuda()) {
    const c10::cuda::CUDAGuard guard(x.device());
    cuda::sample(x.data_ptr<float>(), out.data_ptr<int64_t>(), R, V, seed, offset, stream_of(x));
    return out;
  }
#endif
  no_kernel("sample", x);
}

}  // namespace mtad::ops
