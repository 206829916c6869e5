// CPU reference of trie acceptance: the shared walks of ops/detail/tree_accept.h, and the
// draw of the next token from the residual of the last node.
#include <cstdint>

#include "ops/cpu/draw.h"
#include "ops/detail/tree_accept.h"
#include "ops/rng.h"

namespace mtad::ops::cpu {

namespace td = tree_accept_detail;

void tree_accept(const int64_t* best, const int64_t* parents, const int64_t* tokens, int64_t N, int64_t V,
                 int64_t* info) {
  td::greedy_walk(best, parents, tokens, N, V, info);
}

void tree_sample_f32(const float* logp, int64_t V, const int64_t* parents, const int64_t* tokens, int64_t N,
                     uint64_t seed, uint64_t offset, int64_t* info) {
  td::sample_walk(logp, V, parents, tokens, N, seed, offset, info);
  if (info[td::kStatus] != td::kOk) return;
  const float u = rng::uniform(seed, offset + static_cast<uint64_t>(N));
  info[td::kNextToken] = td::next_token(logp, V, N, info, [&](auto weight, bool scale_by_total) {
    return draw_weighted(V, u, scale_by_total, weight);
  });
}

}  // namespace mtad::ops::cpu
