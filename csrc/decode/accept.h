// Acceptance rules: from the target's logits over a proposal's tree (row 0 the root, row
// 1 + i node i) to the accepted path and the token the target adds after it (the
// resampled token at a rejection, or the bonus token when the whole path holds). Each
// rule wraps one op and is one file under decode/accept/; a new rule is one more.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "decode/proposer.h"

namespace mtad {

struct Verdict {
  std::vector<int64_t> path;  // accepted nodes of the tree, root first
  int64_t next_token = -1;
  std::vector<int64_t> tokens;  // the path's tokens, when the proposal's are on the device only
};

using AcceptRule = Verdict (*)(const at::Tensor& logits, const Proposal& p, const DecodeConfig& c, Rng& rng);

// No draft: one token sampled from the target (algorithms.md 1).
Verdict accept_sample(const at::Tensor& logits, const Proposal& p, const DecodeConfig& c, Rng& rng);
// min(1, p/q) per token of a chain, resampling from the residual (2): ops::sps_accept.
Verdict accept_sps(const at::Tensor& logits, const Proposal& p, const DecodeConfig& c, Rng& rng);
// MTAD's joint likelihood ratio against the top beam, over a chain or a tree (3.2, 3.3): ops::verify.
Verdict accept_joint(const at::Tensor& logits, const Proposal& p, const DecodeConfig& c, Rng& rng);
// ADED: the longest agreeing path (greedy) or lossless multi-candidate sampling over the
// tree (4): ops::tree_accept / ops::tree_sample.
Verdict accept_tree(const at::Tensor& logits, const Proposal& p, const DecodeConfig& c, Rng& rng);

}  // namespace mtad
