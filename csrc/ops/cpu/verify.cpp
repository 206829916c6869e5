// CPU reference of verify's tree pass and of speculative-sampling acceptance: the shared
// code of ops/detail/verify.h with the one-thread draw.
#include <cstdint>

#include "ops/cpu/draw.h"
#include "ops/detail/verify.h"
#include "ops/rng.h"

namespace mtad::ops::cpu {

void verify_tree_f32(const float* logp, int64_t V, const int64_t* parents, const int64_t* tokens, int64_t N,
                     const float* best_lq, int64_t G, float log_tau, float* node_lp, int64_t* info) {
  verify_detail::verify_tree(logp, V, parents, tokens, N, best_lq, G, log_tau, node_lp, info);
}

void sps_accept_f32(const float* tlp, const float* dlp, const int64_t* tokens, int64_t G, int64_t V, uint64_t seed,
                    uint64_t offset, int64_t* out) {
  if (!verify_detail::sps_chain(tlp, dlp, tokens, G, V, seed, offset, out)) return;
  const float u = rng::uniform(seed, offset + static_cast<uint64_t>(G));
  out[1] = verify_detail::sps_next_token(tlp, dlp, out[0], G, V, [&](auto weight, bool scale_by_total) {
    return draw_weighted(V, u, scale_by_total, weight);
  });
}

}  // namespace mtad::ops::cpu
