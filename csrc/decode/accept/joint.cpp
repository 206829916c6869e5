// MTAD's rule (algorithms.md 3.2, 3.3): a path is accepted when its joint likelihood under
// the target, against the top beam's under the draft, clears tau; over a chain (the top
// beam itself) or the whole beam tree; the target then adds the bonus token.
#include <ATen/ATen.h>

#include "decode/accept.h"
#include "ops/verify.h"

namespace mtad {

Verdict accept_joint(const at::Tensor& logits, const Proposal& p, const DecodeConfig& c, Rng& rng) {
  const DraftTree& t = p.tree;
  std::vector<float> best_lq;
  for (int64_t x : t.path_to(p.best_leaf)) best_lq.push_back(t.logprob[x]);
  const auto dev = logits.device();
  const ops::VerifyResult r =
      ops::verify(logits, at::tensor(t.parent, at::kLong).to(dev), at::tensor(t.token, at::kLong).to(dev),
                  at::tensor(best_lq, at::kFloat).to(dev), c.tau, c.target.temperature, c.target.top_k,
                  c.target.top_p, c.seed, rng.next());
  const at::Tensor path = r.path.contiguous();  // verify read it back with its header
  const int64_t* h = path.data_ptr<int64_t>();
  return {std::vector<int64_t>(h, h + path.numel()), r.bonus_token, {}};
}

}  // namespace mtad
