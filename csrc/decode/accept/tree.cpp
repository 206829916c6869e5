// ADED's rule (algorithms.md 4): greedy, the longest path whose every token is the target's
// argmax; sampled, lossless multi-candidate rejection sampling down the tree.
#include <ATen/ATen.h>

#include "decode/accept.h"
#include "ops/sampling.h"
#include "ops/tree_accept.h"

namespace mtad {

Verdict accept_tree(const at::Tensor& logits, const Proposal& p, const DecodeConfig& c, Rng& rng) {
  const auto dev = logits.device();
  const at::Tensor par = at::tensor(p.tree.parent, at::kLong).to(dev), tok = at::tensor(p.tree.token, at::kLong).to(dev);
  ops::TreeAcceptResult r;
  if (c.target.temperature == 0) {
    r = ops::tree_accept(logits, par, tok);
  } else {
    const at::Tensor lp = ops::normalize(logits, c.target.temperature, c.target.top_k, c.target.top_p);
    r = ops::tree_sample(lp, par, tok, c.seed, rng.next());
  }
  const at::Tensor path = r.path.contiguous();
  const int64_t* h = path.data_ptr<int64_t>();
  return {std::vector<int64_t>(h, h + r.accept_len), r.next_token, {}};
}

}  // namespace mtad
