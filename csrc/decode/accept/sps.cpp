// Speculative sampling's rule (algorithms.md 2): token i of the chain is kept with
// probability min(1, p/q); the first rejection resamples from the residual max(0, p - q);
// a chain kept whole earns the target's bonus token.
#include <ATen/ATen.h>

#include "decode/accept.h"
#include "ops/sampling.h"
#include "ops/to_host.h"
#include "ops/verify.h"

namespace mtad {

Verdict accept_sps(const at::Tensor& logits, const Proposal& p, const DecodeConfig& c, Rng& rng) {
  const at::Tensor lp = ops::normalize(logits, c.target.temperature, c.target.top_k, c.target.top_p);
  const at::Tensor tokens =
      p.tokens.defined() ? p.tokens : at::tensor(p.tree.token, at::kLong).to(lp.device());
  // The step's one read: the verdict and the drafted tokens in one copy.
  const at::Tensor out = ops::sps_accept_launch(lp, p.draft_logprobs, tokens, c.seed, rng.next());
  const at::Tensor host = ops::to_host(at::cat({out, tokens}));
  const int64_t* h = host.data_ptr<int64_t>();
  const auto [a, next] = ops::sps_accept_finish(h, lp.size(1));
  Verdict v;
  for (int64_t i = 0; i < a; ++i) v.path.push_back(i);
  v.tokens.assign(h + 3, h + 3 + a);
  v.next_token = next;
  return v;
}

}  // namespace mtad
