// Speculative sampling's rule (algorithms.md 2): token i of the chain is kept with
// probability min(1, p/q); the first rejection resamples from the residual max(0, p - q);
// a chain kept whole earns the target's bonus token.
#include <ATen/ATen.h>

#include "decode/accept.h"
#include "ops/sampling.h"
#include "ops/verify.h"

namespace mtad {

Verdict accept_sps(const at::Tensor& logits, const Proposal& p, const DecodeConfig& c, Rng& rng) {
  const at::Tensor lp = ops::normalize(logits, c.target.temperature, c.target.top_k, c.target.top_p);
  const auto [a, next] =
      ops::sps_accept(lp, p.draft_logprobs, at::tensor(p.tree.token, at::kLong), c.seed, rng.next());
  Verdict v;
  for (int64_t i = 0; i < a; ++i) v.path.push_back(i);
  v.next_token = next;
  return v;
}

}  // namespace mtad
