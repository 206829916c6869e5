// Speculative sampling (algorithms.md 2): gamma draft tokens, one target pass over all
// of them, accept by min(1, p/q), resample from the residual at the first rejection.
#include <ATen/ATen.h>

#include "decode/timer.h"
#include "mtad/decoder.h"
#include "ops/sampling.h"
#include "ops/verify.h"

namespace mtad {

std::vector<int64_t> Decoder::step_sps(StepStats& s) {
  const auto& c = config_;
  const int64_t G = c.gamma;
  const int64_t n = static_cast<int64_t>(tokens_.size());
  std::vector<int64_t> drafted;
  std::vector<at::Tensor> q_rows;
  {
    ScopedTimer t(s.draft_s);
    at::Tensor logits = draft_catch_up();
    for (int64_t i = 0; i < G; ++i) {
      at::Tensor lq = ops::normalize(logits, c.draft.temperature, c.draft.top_k, c.draft.top_p);
      drafted.push_back(ops::sample(lq, c.seed, next_offset()).item<int64_t>());
      q_rows.push_back(lq);
      if (i + 1 < G) logits = draft_->forward(dcache_, at::tensor({drafted.back()}, at::kLong), at::Tensor(),
                                              at::Tensor(), at::Tensor());
    }
    s.draft_forwards = G;
  }
  std::pair<int64_t, int64_t> res;
  {
    ScopedTimer t(s.verify_s);
    std::vector<int64_t> ids{tokens_.back()};
    ids.insert(ids.end(), drafted.begin(), drafted.end());
    at::Tensor logits = target_.forward(tcache_, at::tensor(ids, at::kLong), at::Tensor(), at::Tensor(), at::Tensor());
    at::Tensor lp = ops::normalize(logits, c.target.temperature, c.target.top_k, c.target.top_p);
    res = ops::sps_accept(lp, at::cat(q_rows, 0), at::tensor(drafted, at::kLong), c.seed, next_offset());
    s.target_forwards = 1;
  }
  const int64_t a = res.first;
  {
    ScopedTimer t(s.rollback_s);
    tcache_.truncate(n + a);  // the fed last token plus the accepted drafts
    // The draft saw the drafts it fed itself (all but the last); keep the accepted ones.
    dcache_.truncate(std::min(dcache_.length, n + a));
  }
  s.drafted = G;
  s.accepted = a;
  std::vector<int64_t> out(drafted.begin(), drafted.begin() + a);
  out.push_back(res.second);
  return out;
}

}  // namespace mtad
