// One fused draft beam step of MTAD (algorithms.md 3.1): normalise W rows of draft
// logits, form the joint scores b_j + log s_j(v), choose the next beams.
#pragma once
#include <ATen/core/Tensor.h>

#include <tuple>

#include "ops/detail/beam_step.h"

namespace mtad::ops {

// logits:  float32 [W_in, V], row j = draft logits after beam j
// scores:  float32 [W_in], the beams' log scores (step 1: one row with score 0); finite,
//          or -inf for a dead beam (NaN / +inf are rejected)
// width:   W, how many beams to choose
// temperature/top_k/top_p: the draft's normalisation; temperature 0 means greedy: a beam
//          search, top-W of the joint scores over the draft's plain softmax (T = 1, top_k and
//          top_p ignored, so token_logprob is log softmax, not the 0 of a one-hot row),
//          otherwise sampling from softmax(joint scores):
//          without replacement = top-W of joint + Gumbel(rng(seed, offset + j * V + v)),
//          with replacement = W categorical draws with u = rng(seed, offset + i).
// Returns (parent int64 [M], token int64 [M], token_logprob float32 [M] = log s_parent(token),
//          score float32 [M] = joint renormalised over the M chosen: joint - logsumexp(chosen joints)),
// ordered by descending joint score (ties: lower parent, then lower token id). M = W,
// except greedy or without replacement when fewer than W candidates have a finite score:
// then M is that count (with replacement: 0 when none has). Greedy ignores
// with_replacement.
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> beam_step(const at::Tensor& logits,
                                                                     const at::Tensor& scores, int64_t width,
                                                                     double temperature, int64_t top_k, double top_p,
                                                                     bool with_replacement, uint64_t seed,
                                                                     uint64_t offset);

// beam_step without its host read, for a caller that drafts several depths in a row and
// reads once after them (issue 29): the outputs always have beam_rows(...) entries, the M
// live beams first (as beam_step orders them), then dead beams (parent 0, token 0,
// token_logprob and score -inf), so that they feed the next depth as rows with -inf
// scores, whose candidates are never chosen. `bad` (int64 [1], on the logits' device)
// counts the NaN / +inf scores: the caller reads it with its other results and passes
// it to check_beam_scores (when it is not 0 the beams mean nothing: all dead on the CPU; on
// CUDA valid indices, so that a following draft forward cannot fault before the check).
struct BeamStep {
  at::Tensor parent, token, token_logprob, score, bad;
};
BeamStep beam_step_padded(const at::Tensor& logits, const at::Tensor& scores, int64_t width, double temperature,
                          int64_t top_k, double top_p, bool with_replacement, uint64_t seed, uint64_t offset);
// The number of beams beam_step_padded returns for `rows` input beams over V tokens.
int64_t beam_rows(int64_t rows, int64_t V, int64_t width, double temperature, bool with_replacement);
// Throws beam_step's error for a nonzero count of bad scores.
void check_beam_scores(int64_t bad);

}  // namespace mtad::ops
