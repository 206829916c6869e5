// CPU reference of trie acceptance: the shared walks of ops/tree_accept.h, and the draw of
// the next token from the residual of the last node.
#include <cstdint>

#include "ops/rng.h"
#include "ops/tree_accept.h"

namespace mtad::ops::cpu {
namespace {

namespace td = tree_accept_detail;

// Inverse-CDF draw as ops::sample does it: the first id whose running sum of weights (in
// id order, double) exceeds target; if rounding leaves none, the last id with positive
// weight; -1 when every weight is 0.
template <class Weight>
int64_t first_exceeding(int64_t V, double target, Weight weight) {
  double cum = 0.0;
  int64_t last = -1;
  for (int64_t v = 0; v < V; ++v) {
    const float w = weight(v);
    if (!(w > 0.f)) continue;
    cum += w;
    last = v;
    if (cum > target) return v;
  }
  return last;
}

}  // namespace

void tree_accept(const int64_t* best, const int64_t* parents, const int64_t* tokens, int64_t N, int64_t V,
                 int64_t* info) {
  td::greedy_walk(best, parents, tokens, N, V, info);
}

void tree_sample_f32(const float* logp, int64_t V, const int64_t* parents, const int64_t* tokens, int64_t N,
                     uint64_t seed, uint64_t offset, int64_t* info) {
  td::sample_walk(logp, V, parents, tokens, N, seed, offset, info);
  if (info[td::kStatus] != td::kOk) return;
  const float* p = logp + info[td::kNextRow] * V;
  const int64_t* rejected = info + td::kHeader + N;
  const int64_t nrej = info[td::kRejected];
  const float u = rng::uniform(seed, offset + static_cast<uint64_t>(N));
  const auto residual = [&](int64_t v) { return td::residual_weight(p, rejected, nrej, v); };
  double total = 0.0;
  for (int64_t v = 0; v < V; ++v) total += residual(v);
  int64_t token = total > 0.0 ? first_exceeding(V, u * total, residual) : -1;
  // Nothing left besides the rejected tokens (rounding): draw from p itself.
  if (token < 0) token = first_exceeding(V, u, [&](int64_t v) { return expf(p[v]); });
  info[td::kNextToken] = token;
}

}  // namespace mtad::ops::cpu
