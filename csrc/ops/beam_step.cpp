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

// The beams, padded (beam_step_padded), and how many of them live (int64 [1] on the device).
struct Padded {
  BeamStep beams;
  at::Tensor alive;
};

Padded run(const at::Tensor& logits, const at::Tensor& scores, int64_t width, double temperature, int64_t top_k,
           double top_p, bool with_replacement, uint64_t seed, uint64_t offset) {
  check_inputs(logits, scores, width, temperature, top_k, top_p);
  const at::Tensor x = logits.contiguous(), s = scores.contiguous();
  const int64_t rows = x.size(0), V = x.size(1), N = rows * V;
  const float T = static_cast<float>(temperature), P = static_cast<float>(top_p);
  // Greedy and sampling without replacement choose distinct candidates (at most N).
  const bool select = T == 0.f || !with_replacement;
  const int64_t cap = beam_rows(rows, V, width, temperature, with_replacement);
  const auto ids = x.options().dtype(at::kLong);
  at::Tensor parent = at::empty({cap}, ids), token = at::empty({cap}, ids);
  at::Tensor token_lp = at::empty({cap}, x.options()), score = at::empty({cap}, x.options());

  if (x.device().is_cpu()) {
    const float* sp = s.data_ptr<float>();
    int64_t bad = 0;
    for (int64_t j = 0; j < rows; ++j) bad += std::isnan(sp[j]) || sp[j] == std::numeric_limits<float>::infinity();
    // Bad scores: no beams (the kernel's draws assume scores that are finite or -inf).
    const int64_t M = bad ? 0
                          : cpu::beam_step_f32(x.data_ptr<float>(), sp, rows, V, width, T, top_k, P, with_replacement,
                                               seed, offset, parent.data_ptr<int64_t>(), token.data_ptr<int64_t>(),
                                               token_lp.data_ptr<float>(), score.data_ptr<float>());
    // Dead beams after the live ones, as the CUDA branch writes them.
    parent.narrow(0, M, cap - M).fill_(0);
    token.narrow(0, M, cap - M).fill_(0);
    token_lp.narrow(0, M, cap - M).fill_(-std::numeric_limits<float>::infinity());
    score.narrow(0, M, cap - M).fill_(-std::numeric_limits<float>::infinity());
    return {{parent, token, token_lp, score, at::full({1}, bad, ids)}, at::full({1}, M, ids)};
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
    // Nothing is read here: the live count and the score check stay on the device.
    const at::Tensor bad = at::logical_or(at::isnan(s), at::isposinf(s)).sum().to(at::kLong).reshape({1});
    at::Tensor picks, alive;
    if (select) {
      at::Tensor keys = at::empty({N}, ids);
      cuda::beam_keys(lp.data_ptr<float>(), s.data_ptr<float>(), keys.data_ptr<int64_t>(), rows, V, T != 0.f, seed,
                      offset, stream);
      // The top keys, descending; dead ones (INT64_MIN) last, which beam_finish marks dead.
      picks = std::get<0>(at::topk(keys, cap)).contiguous();
      alive = picks.ne(std::numeric_limits<int64_t>::min()).sum().reshape({1});
    } else {
      at::Tensor joint = at::empty({N}, x.options());
      cuda::beam_joint(lp.data_ptr<float>(), s.data_ptr<float>(), joint.data_ptr<float>(), rows, V, stream);
      alive = joint.gt(-std::numeric_limits<float>::infinity()).any().to(at::kLong).reshape({1}) * width;
      // Draws from softmax(joint): sample()'s kernel on the log-softmax row.
      const at::Tensor joint_lp = at::log_softmax(joint, 0);
      picks = at::empty({cap}, ids);
      cuda::sample_repeat(joint_lp.data_ptr<float>(), picks.data_ptr<int64_t>(), cap, N, seed, offset, stream);
    }
    at::Tensor work_flat = at::empty({cap}, ids), work_joint = at::empty({cap}, x.options());
    cuda::beam_finish(picks.data_ptr<int64_t>(), select, cap, lp.data_ptr<float>(), s.data_ptr<float>(), V, N,
                      work_flat.data_ptr<int64_t>(), work_joint.data_ptr<float>(), parent.data_ptr<int64_t>(),
                      token.data_ptr<int64_t>(), token_lp.data_ptr<float>(), score.data_ptr<float>(), stream);
    if (!select) {  // no live candidate: every draw is dead
      const at::Tensor none = alive.eq(0);
      parent.masked_fill_(none, 0);
      token.masked_fill_(none, 0);
      token_lp.masked_fill_(none, -std::numeric_limits<float>::infinity());
      score.masked_fill_(none, -std::numeric_limits<float>::infinity());
    }
    return {{parent, token, token_lp, score, bad}, alive};
  }
#endif
  no_kernel("beam_step", x);
}

}  // namespace

int64_t beam_rows(int64_t rows, int64_t V, int64_t width, double temperature, bool with_replacement) {
  const bool select = temperature == 0 || !with_replacement;
  return select ? std::min(width, rows * V) : width;
}

void check_beam_scores(int64_t bad) {
  if (bad != 0) bad_scores();
}

BeamStep beam_step_padded(const at::Tensor& logits, const at::Tensor& scores, int64_t width, double temperature,
                          int64_t top_k, double top_p, bool with_replacement, uint64_t seed, uint64_t offset) {
  return run(logits, scores, width, temperature, top_k, top_p, with_replacement, seed, offset).beams;
}

BeamResult beam_step(const at::Tensor& logits, const at::Tensor& scores, int64_t width, double temperature,
                     int64_t top_k, double top_p, bool with_replacement, uint64_t seed, uint64_t offset) {
  const Padded r = run(logits, scores, width, temperature, top_k, top_p, with_replacement, seed, offset);
  // The one host read: the live count sizes the outputs (and the scores are checked).
  const at::Tensor h = to_host(at::cat({r.alive, r.beams.bad}));
  check_beam_scores(h.data_ptr<int64_t>()[1]);
  const int64_t M = h.data_ptr<int64_t>()[0];
  const BeamStep& b = r.beams;
  return {b.parent.narrow(0, 0, M), b.token.narrow(0, 0, M), b.token_logprob.narrow(0, 0, M),
          b.score.narrow(0, 0, M)};
}

}  // namespace mtad::ops
