// Acceptance of a draft token trie (ADED, algorithms.md 4): greedy (the longest path the
// target's argmax agrees with) and lossless sampling (multi-candidate rejection over the
// trie, SpecInfer-style).
#pragma once
#include <ATen/core/Tensor.h>

#include "ops/detail/tree_accept.h"

namespace mtad::ops {

struct TreeAcceptResult {
  int64_t accept_len = 0;    // accepted draft tokens
  int64_t accept_node = -1;  // the node ending the accepted path (-1 when none)
  at::Tensor path;           // int64 [accept_len] on the CPU: node indices root -> accept_node
  int64_t next_token = -1;   // the target's token after the accepted path
};

// Greedy acceptance of a trie. target: logits [N + 1, V] (float32/16, bfloat16; the
// argmax of each row is taken, ties to the lowest id, NaN above all) or the argmax ids
// themselves, int64 [N + 1]. Row 0 follows the committed prefix, row n + 1 follows node n.
// parents: int64 [N], -1 or an earlier node; tokens: int64 [N]. Returns the longest
// root-to-node path whose every token equals the target's argmax at its position (ties:
// the lower node index) and the target's next token after it.
TreeAcceptResult tree_accept(const at::Tensor& target, const at::Tensor& parents, const at::Tensor& tokens);

// Lossless sampling acceptance of a trie (see tree_accept_detail::sample_walk):
// target_logprobs float32 [N + 1, V], normalised (ops::normalize). The emitted tokens
// (the path's tokens, then next_token) are distributed as sampling from the target.
TreeAcceptResult tree_sample(const at::Tensor& target_logprobs, const at::Tensor& parents, const at::Tensor& tokens,
                             uint64_t seed, uint64_t offset);

}  // namespace mtad::ops
