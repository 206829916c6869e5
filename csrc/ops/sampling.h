// Normalisation of logits (algorithms.md section 0) and sampling from log-probs.
#pragma once
#include <ATen/core/Tensor.h>

#include "ops/detail/sampling.h"

namespace mtad::ops {

// logits float32 [R, V] -> log-probs float32 [R, V], -inf for removed tokens.
// temperature == 0: one-hot on the argmax (ties: lowest id), i.e. 0 there, -inf elsewhere.
// Otherwise divide by temperature, keep the top_k largest (0: all), then the smallest
// prefix of the descending order whose softmax mass reaches top_p (first token always
// kept; top_p 0 or 1: all), and renormalise with log-softmax. Ties at the top-k / top-p
// boundary are broken by lower token id first. temperature and top_p are used as float32.
// A row with no finite maximum after scaling (all -inf, or a +inf or NaN; NaN counts as
// the maximum) is one-hot on that argmax, so every output row is a distribution.
at::Tensor normalize(const at::Tensor& logits, double temperature, int64_t top_k, double top_p);

// One token per row of log-probs [R, V]: row r draws u = rng::uniform(seed, offset + r)
// and takes the first id whose cumulative probability (in id order, summed in double)
// exceeds u. A one-hot row returns its token. If rounding leaves the sum at or below u, the
// last id with non-zero probability; -1 for a row without any. Returns int64 [R].
at::Tensor sample(const at::Tensor& logprobs, uint64_t seed, uint64_t offset);

}  // namespace mtad::ops
