// Kernels of ops/beam_step.h (layout: ops/detail/common.h). The candidates' order keys
// and Gumbel noise are the shared helpers of ops/detail/sampling.h.
#pragma once

#include <cstdint>

#include "ops/detail/common.h"
#include "ops/detail/sampling.h"

namespace mtad::ops {

// The distribution a greedy draft (temperature 0) beam-searches on: the plain softmax,
// T = 1 with no truncation (algorithms.md 3.1), so that its W beams and per-token draft
// log-probs are those of a width-W beam search on joint log-probabilities.
struct GreedyDraftNorm {
  float temperature;
  int64_t top_k;
  float top_p;
};
inline constexpr GreedyDraftNorm kGreedyDraft{1.f, 0, 1.f};

}  // namespace mtad::ops

namespace mtad::ops::cpu {

// One beam step (ops/beam_step.h) on logits [rows, V] and scores [rows]; writes the M
// chosen beams to the first M entries of the outputs (room for `width`) and returns M.
int64_t beam_step_f32(const float* logits, const float* scores, int64_t rows, int64_t V, int64_t width,
                      float temperature, int64_t top_k, float top_p, bool with_replacement, uint64_t seed,
                      uint64_t offset, int64_t* parent, int64_t* token, float* token_logprob, float* score);

}  // namespace mtad::ops::cpu

#ifdef MTAD_CUDA_DECLS
namespace mtad::cuda {

// Selection keys of the rows * V beam candidates for top-W: the signed form of
// rank_key(joint [+ Gumbel(seed, offset + flat)]) (larger = chosen first), INT64_MIN for
// a candidate whose joint score b_j + lp[j, v] is -inf (never chosen).
void beam_keys(const float* lp, const float* scores, int64_t* keys, int64_t rows, int64_t V, bool gumbel,
               uint64_t seed, uint64_t offset, cudaStream_t stream);
// joint[j * V + v] = scores[j] + lp[j * V + v].
void beam_joint(const float* lp, const float* scores, float* joint, int64_t rows, int64_t V, cudaStream_t stream);
// Turns M chosen candidates (selection keys from beam_keys when from_keys, else flat
// indices j * V + v) into the outputs of beam_step, ordered by descending joint score
// (ties: lower flat index, then lower position in `chosen`) and renormalised. A key of
// INT64_MIN (from_keys: a dead candidate) gives a dead beam, ranked after the live ones
// (parent 0, token 0, token_logprob and score -inf).
// work_flat / work_joint: device scratch of M entries.
void beam_finish(const int64_t* chosen, bool from_keys, int64_t M, const float* lp, const float* scores, int64_t V,
                 int64_t N, int64_t* work_flat, float* work_joint, int64_t* parent, int64_t* token,
                 float* token_logprob, float* score, cudaStream_t stream);

}  // namespace mtad::cuda
#endif
