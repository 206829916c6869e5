#include "ops/beam_step.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "ops/dispatch.h"
#include "ops/to_host.h"

namespace mtad::ops {
namespace {

// Candidates are indexed j * V + v in the low 32 bits of a rank key.
constexpr int64_t kMaxCandidates = std::numeric_limits<int32_t>::max();

using BeamResult = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

void check_inputs(const at::Tensor& logits, const at::Tensor& scores, int64_t width, double temperature,
                  int64_t top_k, double top_p) {
  TORCH_CHECK(logits.defined() && scores.defined(), "beam_step: logits and scores must be defined");
  TORCH_CHECK(logits.scalar_type() == at::kFloat, "beam_step: logits must be float32, got ", logits.scalar_type());
  TORCH_CHECK(logits.dim() == 2 && logits.size(0) > 0 && logits.size(1) > 0,
              "beam_step: logits must be a non-empty [W_in, V], got shape ", logits.sizes());
  TORCH_CHECK(logits.size(0) * logits.size(1) < kMaxCandidates, "beam_step: logits has ", logits.numel(),
              " candidates, more than supported");
  TORCH_CHECK(scores.scalar_type() == at::kFloat, "beam_step: scores must be float32, got ", scores.scalar_type());
  TORCH_CHECK(scores.dim() == 1 && scores.size(0) == logits.size(0), "beam_step: scores must be [W_in] = [",
              logits.size(0), "], got shape ", scores.sizes());
  TORCH_CHECK(scores.device() == logits.device(), "beam_step: scores is on ", scores.device(),
              " but logits is on ", logits.device());
  TORCH_CHECK(width >= 1, "beam_step: width must be >= 1, got ", width);
  TORCH_CHECK(temperature >= 0 && std::isfinite(static_cast<float>(temperature)),
              "beam_step: temperature must be finite and >= 0 (0 = greedy), got ", temperature);
  TORCH_CHECK(top_k >= 0, "beam_step: top_k must be >= 0 (0 = keep all), got ", top_k);
  TORCH_CHECK(top_p >= 0 && top_p <= 1, "beam_step: top_p must be in [0, 1] (0 or 1 = keep all), got ", top_p);
}

// A beam score is a log-probability, or -inf for a dead beam; NaN or +inf would make
// every renormalised score NaN.
[[noreturn]] void bad_scores() {
  TORCH_CHECK(false, "beam_step: scores must be finite or -inf (a dead beam), got NaN or +inf");
}

}  // namespace

BeamResult beam_step(const at::Tensor& logits, const at::Tensor& scores, int64_t width, double temperature,
                     int64_t top_k, double top_p, bool with_replacement, uint64_t seed, uint64_t offset) {
  check_inputs(logits, scores, width, temperature, top_k, top_p);
  const at::Tensor x = logits.contiguous(), s = scores.contiguous();
  const int64_t rows = x.size(0), V = x.size(1), N = rows * V;
  const float T = static_cast<float>(temperature), P = static_cast<float>(top_p);
  // Greedy and sampling without replacement choose distinct candidates (at most N).
  const bool select = T == 0.f || !with_replacement;
  const auto ids = x.options().dtype(at::kLong);

  if (x.device().is_cpu()) {
    count_host_read();  // the CUDA branch's one read (the number of live candidates)
    const float* sp = s.data_ptr<float>();
    for (int64_t j = 0; j < rows; ++j) {
      if (std::isnan(sp[j]) || sp[j] == std::numeric_limits<float>::infinity()) bad_scores();
    }
    const int64_t cap = select ? std::min(width, N) : width;
    at::Tensor parent = at::empty({cap}, ids), token = at::empty({cap}, ids);
    at::Tensor token_lp = at::empty({cap}, x.options()), score = at::empty({cap}, x.options());
    const int64_t M = cpu::beam_step_f32(x.data_ptr<float>(), sp, rows, V, width, T, top_k, P, with_replacement, seed,
                                         offset, parent.data_ptr<int64_t>(), token.data_ptr<int64_t>(),
                                         token_lp.data_ptr<float>(), score.data_ptr<float>());
    return {parent.narrow(0, 0, M), token.narrow(0, 0, M), token_lp.narrow(0, 0, M), score.narrow(0, 0, M)};
  }
#ifdef MTAD_WITH_CUDA
  if (x.is_cuda()) {
    const c10::cuda::CUDAGuard guard(x.device());
    const cudaStream_t stream = stream_of(x);
    at::Tensor lp = at::empty_like(x);
    if (T == 0.f) {  // greedy: beam search on the plain softmax (see kGreedyDraft)
      cuda::normalize(x.data_ptr<float>(), lp.data_ptr<float>(), rows, V, kGreedyDraft.temperature,
                      kGreedyDraft.top_k, kGreedyDraft.top_p, stream);
    } else {
      cuda::normalize(x.data_ptr<float>(), lp.data_ptr<float>(), rows, V, T, top_k, P, stream);
    }
    at::Tensor chosen;  // select: the top keys, descending; else the joint scores [N]
    at::Tensor avail;   // how many candidates are alive (select: among the top keys)
    if (select) {
      at::Tensor keys = at::empty({N}, ids);
      cuda::beam_keys(lp.data_ptr<float>(), s.data_ptr<float>(), keys.data_ptr<int64_t>(), rows, V, T != 0.f, seed,
                      offset, stream);
      chosen = std::get<0>(at::topk(keys, std::min(width, N)));
      avail = chosen.ne(std::numeric_limits<int64_t>::min()).sum();
    } else {
      chosen = at::empty({N}, x.options());
      cuda::beam_joint(lp.data_ptr<float>(), s.data_ptr<float>(), chosen.data_ptr<float>(), rows, V, stream);
      avail = chosen.gt(-std::numeric_limits<float>::infinity()).sum();
    }
    // The step's one host round trip: M sizes the outputs (and the scores are checked).
    const at::Tensor bad = at::logical_or(at::isnan(s), at::isposinf(s)).sum();
    const at::Tensor status = to_host(at::stack({avail, bad}));
    if (status[1].item<int64_t>() != 0) bad_scores();
    const int64_t alive = status[0].item<int64_t>();
    const int64_t M = select ? alive : (alive > 0 ? width : 0);

    at::Tensor parent = at::empty({M}, ids), token = at::empty({M}, ids);
    at::Tensor token_lp = at::empty({M}, x.options()), score = at::empty({M}, x.options());
    if (M == 0) return {parent, token, token_lp, score};
    at::Tensor picks = chosen;
    if (!select) {
      // Draws from softmax(joint): sample()'s kernel on the log-softmax row.
      const at::Tensor joint_lp = at::log_softmax(chosen, 0);
      picks = at::empty({M}, ids);
      cuda::sample_repeat(joint_lp.data_ptr<float>(), picks.data_ptr<int64_t>(), M, N, seed, offset, stream);
    }
    at::Tensor work_flat = at::empty({M}, ids), work_joint = at::empty({M}, x.options());
    cuda::beam_finish(picks.data_ptr<int64_t>(), select, M, lp.data_ptr<float>(), s.data_ptr<float>(), V, N,
                      work_flat.data_ptr<int64_t>(), work_joint.data_ptr<float>(), parent.data_ptr<int64_t>(),
                      token.data_ptr<int64_t>(), token_lp.data_ptr<float>(), score.data_ptr<float>(), stream);
    return {parent, token, token_lp, score};
  }
#endif
  no_kernel("beam_step", x);
}

}  // namespace mtad::ops
