// Joint-likelihood verification of a draft tree (algorithms.md 3.2 and 3.3); single-draft
// MTAD is the chain case (parents = -1, 0, 1, ...).
#pragma once
#include <ATen/core/Tensor.h>

#include "ops/detail/verify.h"

namespace mtad::ops {

struct VerifyResult {
  int64_t accept_len = 0;    // a: the deepest passing depth (0 if none)
  int64_t accept_node = -1;  // the node ending the accepted path (-1 when a == 0)
  at::Tensor path;           // int64 [a] on the host: node indices root -> accept_node
  int64_t bonus_token = -1;  // sampled from the target after the accepted path
  at::Tensor node_logprob;   // float32 [N]: LP(n), each node's summed target path log-prob
};

// target_logits: float32 [N + 1, V]; row 0 = the target's logits after the committed
//                prefix (predicting depth-1 nodes), row n + 1 = logits after node n.
// parents:       int64 [N], -1 for a depth-1 node, else an earlier node index (< n).
// tokens:        int64 [N]
// best_lq:       float32 [G], per-depth draft log-prob of the final best beam's ancestors
//                (lq_1..lq_G); LQ_best(d) = sum of the first d.
// tau:           acceptance threshold in (0, 1]: depth d passes if some node n at depth d has
//                LP(n) - LQ_best(d) > log(tau).
// The target's rows are normalised with (temperature, top_k, top_p); the bonus token is
// sampled from the normalised row after the accepted path with u = rng(seed, offset).
// Among passing nodes at depth a, the highest LP wins (ties: lower node index).
VerifyResult verify(const at::Tensor& target_logits, const at::Tensor& parents, const at::Tensor& tokens,
                    const at::Tensor& best_lq, double tau, double temperature, int64_t top_k, double top_p,
                    uint64_t seed, uint64_t offset);

// Speculative sampling acceptance (algorithms.md 2) for one chain of G draft tokens.
// target_logprobs: float32 [G + 1, V] (normalised; row i scores position i),
// draft_logprobs: float32 [G, V] (normalised), tokens: int64 [G].
// Token i is accepted if rng(seed, offset + i) < min(1, p_i(x_i) / q_i(x_i)); at the first
// rejection the next token is drawn from norm(max(0, p_i - q_i)) with u = rng(seed,
// offset + G); if all are accepted it is drawn from p_G with the same u.
// Returns (number accepted, next token).
// sps_accept in two halves, for a caller that reads the result back with more (one round
// trip): the launch returns int64 [3] on the logits' device (accepted count, next token,
// first out-of-range token or -1); finish checks those, read on the host, and returns the pair.
at::Tensor sps_accept_launch(const at::Tensor& target_logprobs, const at::Tensor& draft_logprobs,
                             const at::Tensor& tokens, uint64_t seed, uint64_t offset);
std::pair<int64_t, int64_t> sps_accept_finish(const int64_t* out, int64_t V);
std::pair<int64_t, int64_t> sps_accept(const at::Tensor& target_logprobs, const at::Tensor& draft_logprobs,
                                       const at::Tensor& tokens, uint64_t seed, uint64_t offset);

}  // namespace mtad::ops
