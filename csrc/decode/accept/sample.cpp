// AR's rule (algorithms.md 1): no draft to judge; the target's next token is sampled.
#include <ATen/ATen.h>

#include "decode/accept.h"
#include "ops/sampling.h"
#include "ops/to_host.h"

namespace mtad {

Verdict accept_sample(const at::Tensor& logits, const Proposal& p, const DecodeConfig& c, Rng& rng) {
  const at::Tensor lp = ops::normalize(logits, c.target.temperature, c.target.top_k, c.target.top_p);
  return {{}, ops::to_host(ops::sample(lp, c.seed, rng.next())).item<int64_t>(), {}};  // the one read
}

}  // namespace mtad
