// CPU reference of verify's tree pass and of speculative-sampling acceptance.
#include <cmath>
#include <cstdint>

#include "ops/cuda/launch_verify.h"
#include "ops/rng.h"

namespace mtad::ops::cpu {
namespace {

// Inverse-CDF draw as ops::sample does it: the first id whose running sum of weights
// (double, in id order) exceeds target; if rounding leaves the sum at or below target,
// the last id with positive weight. -1 when every weight is 0.
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

void verify_tree_f32(const float* logp, int64_t V, const int64_t* parents, const int64_t* tokens, int64_t N,
                     const float* best_lq, int64_t G, float log_tau, float* node_lp, int64_t* info) {
  verify_detail::verify_tree(logp, V, parents, tokens, N, best_lq, G, log_tau, node_lp, info);
}

void sps_accept_f32(const float* tlp, const float* dlp, const int64_t* tokens, int64_t G, int64_t V, uint64_t seed,
                    uint64_t offset, int64_t* out) {
  out[0] = out[1] = 0;
  out[2] = -1;
  for (int64_t i = 0; i < G; ++i) {
    if (tokens[i] < 0 || tokens[i] >= V) {
      out[2] = i;
      return;
    }
  }
  int64_t n = G;
  for (int64_t i = 0; i < G; ++i) {
    const int64_t x = tokens[i];
    const float u = rng::uniform(seed, offset + uint64_t(i));
    if (!(u < verify_detail::sps_accept_prob(tlp[i * V + x], dlp[i * V + x]))) {
      n = i;
      break;
    }
  }
  const float u = rng::uniform(seed, offset + uint64_t(G));
  const float* p = tlp + n * V;
  int64_t token = -1;
  if (n < G) {
    // Rejected at n: draw from norm(max(0, p_n - q_n)) by scaling u with the residual's mass.
    const float* q = dlp + n * V;
    const auto residual = [&](int64_t v) { return verify_detail::sps_residual(p[v], q[v]); };
    double total = 0.0;
    for (int64_t v = 0; v < V; ++v) total += residual(v);
    if (total > 0.0) token = first_exceeding(V, u * total, residual);
  }
  // All accepted (draw from p_G), or an all-zero residual (p_n == q_n: draw from p_n).
  if (token < 0) token = first_exceeding(V, u, [&](int64_t v) { return std::exp(p[v]); });
  out[0] = n;
  out[1] = token;
}

}  // namespace mtad::ops::cpu
