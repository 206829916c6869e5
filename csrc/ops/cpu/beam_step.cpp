// CPU reference of the fused MTAD beam step (ops/beam_step.h).
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <numeric>
#include <utility>
#include <vector>

#include "ops/detail/beam_step.h"

namespace mtad::ops::cpu {
namespace {

using sampling_detail::gumbel;
using sampling_detail::rank_index;
using sampling_detail::rank_key;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// Greedy / without replacement: the top `width` candidates by joint score (plus Gumbel
// noise when sampling). Dead candidates (-inf joint) are left out, so fewer may come back.
std::vector<int64_t> choose_top(const float* lp, const float* scores, int64_t V, int64_t N, int64_t width,
                                bool noise, uint64_t seed, uint64_t offset) {
  std::vector<uint64_t> keys;
  for (int64_t j = 0, f = 0; j < N / V; ++j) {
    for (int64_t v = 0; v < V; ++v, ++f) {
      const float joint = scores[j] + lp[f];
      if (!(joint > kNegInf)) continue;
      const float key = noise ? joint + gumbel(seed, offset + static_cast<uint64_t>(f)) : joint;
      keys.push_back(rank_key(key, f, N));
    }
  }
  const int64_t M = std::min<int64_t>(width, static_cast<int64_t>(keys.size()));
  std::partial_sort(keys.begin(), keys.begin() + M, keys.end(), std::greater<>());
  std::vector<int64_t> chosen(M);
  for (int64_t i = 0; i < M; ++i) chosen[i] = rank_index(keys[i], N);
  return chosen;
}

// With replacement: `width` draws from softmax(joint) over all candidates, draw i exactly
// as sample() draws from the log-softmax row with u = rng(seed, offset + i). Empty when
// every candidate is dead.
std::vector<int64_t> draw(const float* lp, const float* scores, int64_t V, int64_t N, int64_t width, uint64_t seed,
                          uint64_t offset) {
  std::vector<float> joint(N);
  for (int64_t j = 0, f = 0; j < N / V; ++j) {
    for (int64_t v = 0; v < V; ++v, ++f) joint[f] = scores[j] + lp[f];
  }
  float mx = kNegInf;
  for (int64_t f = 0; f < N; ++f) mx = std::max(mx, joint[f]);
  if (!(mx > kNegInf)) return {};
  double s = 0.0;
  for (int64_t f = 0; f < N; ++f) s += std::exp(joint[f] - mx);
  // The log-softmax as ATen forms it, (x - max) - log(sum), which the GPU path uses.
  const float log_s = static_cast<float>(std::log(s));

  // All draws in one pass over the candidates, in increasing u.
  std::vector<std::pair<float, int64_t>> us(width);
  for (int64_t i = 0; i < width; ++i) us[i] = {rng::uniform(seed, offset + static_cast<uint64_t>(i)), i};
  std::sort(us.begin(), us.end());
  std::vector<int64_t> chosen(width, -1);
  double cum = 0.0;
  int64_t last = -1, next = 0;
  for (int64_t f = 0; f < N && next < width; ++f) {
    const float p = std::exp((joint[f] - mx) - log_s);
    if (!(p > 0.f)) continue;
    cum += p;
    last = f;
    while (next < width && cum > us[next].first) chosen[us[next++].second] = f;
  }
  // Rounding left the running sum at or below u: the last candidate with mass, as sample().
  while (next < width) chosen[us[next++].second] = last;
  return chosen;
}

}  // namespace

int64_t beam_step_f32(const float* logits, const float* scores, int64_t rows, int64_t V, int64_t width,
                      float temperature, int64_t top_k, float top_p, bool with_replacement, uint64_t seed,
                      uint64_t offset, int64_t* parent, int64_t* token, float* token_logprob, float* score) {
  const int64_t N = rows * V;
  std::vector<float> lp(N);
  const bool greedy = temperature == 0.f;
  // A greedy draft is a beam search on the draft's plain softmax (algorithms.md 3.1), not on
  // normalize(T = 0)'s one-hot rows, which would leave one beam and log-probs of 0.
  if (greedy) {
    normalize_f32(logits, lp.data(), rows, V, kGreedyDraft.temperature, kGreedyDraft.top_k, kGreedyDraft.top_p);
  } else {
    normalize_f32(logits, lp.data(), rows, V, temperature, top_k, top_p);
  }
  const std::vector<int64_t> chosen = greedy || !with_replacement
                                          ? choose_top(lp.data(), scores, V, N, width, !greedy, seed, offset)
                                          : draw(lp.data(), scores, V, N, width, seed, offset);
  const int64_t M = static_cast<int64_t>(chosen.size());
  if (M == 0) return 0;

  // Descending joint score, ties to the lower candidate (lower parent, then token).
  const auto joint = [&](int64_t f) { return scores[f / V] + lp[f]; };
  std::vector<int64_t> pos(M);
  std::iota(pos.begin(), pos.end(), int64_t{0});
  std::stable_sort(pos.begin(), pos.end(), [&](int64_t a, int64_t b) {
    const float ja = joint(chosen[a]), jb = joint(chosen[b]);
    return ja != jb ? ja > jb : chosen[a] < chosen[b];
  });
  // Renormalise over the chosen: joint - logsumexp(chosen joints).
  const float mx = joint(chosen[pos[0]]);
  double s = 0.0;
  for (int64_t i = 0; i < M; ++i) s += std::exp(joint(chosen[i]) - mx);
  const float log_s = static_cast<float>(std::log(s));
  for (int64_t i = 0; i < M; ++i) {
    const int64_t f = chosen[pos[i]];
    parent[i] = f / V;
    token[i] = f % V;
    token_logprob[i] = lp[f];
    score[i] = (joint(f) - mx) - log_s;
  }
  return M;
}

}  // namespace mtad::ops::cpu
