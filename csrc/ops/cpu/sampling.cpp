// CPU reference of normalize and sample (ops/sampling.h); the CUDA kernels are held to
// these results. The kept tokens of a row are a prefix of the descending order of
// sampling_detail::rank_key (value, then lower id), found by sorting the keys of a prefix
// that surely holds them.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "ops/detail/sampling.h"

namespace mtad::ops::cpu {
namespace {

using sampling_detail::key_value;
using sampling_detail::rank_index;
using sampling_detail::rank_key;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Tokens are binned by their distance d from the maximum, floor(2 d) for d < 32 (the
// rest, -inf included, in bin kBins): the kept tokens usually lie within a few of the
// maximum, so only the keys of the nearest bins that surely hold them are gathered and
// sorted (sorting a 150k vocabulary would cost milliseconds a row).
constexpr int kBins = 64;

void one_hot(float* out, int64_t V, int64_t id) {
  std::fill(out, out + V, kNegInf);
  out[id] = 0.f;
}

// The first index of the order: the maximum, ties to the lowest id, NaN above all.
int64_t top_index(const float* x, int64_t V) {
  uint64_t top = 0;
  for (int64_t i = 0; i < V; ++i) top = std::max(top, rank_key(x[i], i, V));
  return rank_index(top, V);
}

// Weights relative to the maximum in float, as on the GPU; their sums run in double.
float weight(float v, float m) { return std::exp(v - m); }
float key_weight(uint64_t key, float m) { return weight(key_value(static_cast<uint32_t>(key >> 32)), m); }

int bin_of(float d) { return d < 32.f ? static_cast<int>(d * 2.f) : kBins; }

// The rank key of the last kept token of the scaled row x (maximum m): top-k keeps the
// first K of the order (K = 0: all), top-p the smallest prefix of those whose mass
// reaches P of theirs (P = 1: all). `keys` is scratch.
uint64_t kept_threshold(const float* x, int64_t V, float m, int64_t K, float P, std::vector<uint64_t>& keys) {
  const bool use_p = P < 1.f;
  int64_t count[kBins + 1] = {};
  double mass[kBins + 1] = {};
  double total = 0.0;  // the top-p denominator without top-k: every token, in id order
  for (int64_t i = 0; i < V; ++i) {
    const int b = bin_of(m - x[i]);
    ++count[b];
    if (use_p && K == 0) {
      const float w = weight(x[i], m);
      mass[b] += w;
      total += w;
    }
  }
  const double target = static_cast<double>(P) * total;
  const std::greater<uint64_t> desc;
  int64_t n_near = 0;
  double m_near = 0.0;
  for (int b = 0; b <= kBins; ++b) {
    n_near += count[b];
    m_near += mass[b];
    if (b < kBins && (K > 0 ? n_near < K : m_near < target)) continue;
    // The keys of bins 0..b (every token at b = kBins): a prefix of the order.
    keys.clear();
    for (int64_t i = 0; i < V; ++i) {
      if (bin_of(m - x[i]) <= b) keys.push_back(rank_key(x[i], i, V));
    }
    const auto n = static_cast<int64_t>(keys.size());
    if (K > 0) {
      std::nth_element(keys.begin(), keys.begin() + (K - 1), keys.end(), desc);
      if (!use_p) return keys[K - 1];
      std::sort(keys.begin(), keys.begin() + K, desc);
      double total_k = 0.0;
      for (int64_t j = 0; j < K; ++j) total_k += key_weight(keys[j], m);
      double cum = 0.0;
      for (int64_t j = 0; j < K; ++j) {
        cum += key_weight(keys[j], m);
        if (cum >= static_cast<double>(P) * total_k) return keys[j];
      }
      return keys[K - 1];
    }
    std::sort(keys.begin(), keys.end(), desc);
    double cum = 0.0;
    for (int64_t j = 0; j < n; ++j) {
      cum += key_weight(keys[j], m);
      if (cum >= target) return keys[j];
    }
    // Rounding left these bins just short of the target: widen (at kBins: keep all).
    if (b == kBins) return keys[n - 1];
  }
  return 0;  // unreachable: bin kBins returns
}

// One row of normalize, in -> x (x holds the scaled logits while it works).
void normalize_row(const float* in, float* x, int64_t V, float T, int64_t K, float P, std::vector<uint64_t>& keys) {
  if (T == 0.f) return one_hot(x, V, top_index(in, V));
  for (int64_t i = 0; i < V; ++i) x[i] = in[i] / T;
  const int64_t best = top_index(x, V);
  const float m = x[best];
  // No finite maximum (every logit -inf, or a +inf or NaN): softmax is undefined, and
  // the argmax is the one token such a row can mean.
  if (!std::isfinite(m)) return one_hot(x, V, best);

  const bool use_k = K > 0 && K < V;
  const bool use_p = P > 0.f && P < 1.f;
  if (!use_k && !use_p) {
    double z = 0.0;
    for (int64_t i = 0; i < V; ++i) z += weight(x[i], m);
    const float log_z = static_cast<float>(std::log(z));
    for (int64_t i = 0; i < V; ++i) x[i] = (x[i] - m) - log_z;
    return;
  }
  // Kept: rank key >= the last kept token's, i.e. a larger value, or its value and an id
  // not above its id (the row has no NaN here: NaN would have been the maximum).
  const uint64_t thr = kept_threshold(x, V, m, use_k ? K : 0, use_p ? P : 1.f, keys);
  const float thr_value = key_value(static_cast<uint32_t>(thr >> 32));
  const int64_t thr_id = rank_index(thr, V);
  const auto kept = [&](int64_t i) { return x[i] > thr_value || (x[i] == thr_value && i <= thr_id); };
  double z = 0.0;
  for (int64_t i = 0; i < V; ++i) {
    if (kept(i)) z += weight(x[i], m);
  }
  const float log_z = static_cast<float>(std::log(z));
  for (int64_t i = 0; i < V; ++i) x[i] = kept(i) ? (x[i] - m) - log_z : kNegInf;
}

// Inverse-CDF draw: the first id whose running probability (double sum, id order)
// exceeds u; rounding can leave the sum at or below u, then the last id with mass; -1 if
// the row has none.
int64_t sample_row(const float* lp, int64_t V, float u) {
  double cum = 0.0;
  int64_t last = -1;
  for (int64_t v = 0; v < V; ++v) {
    const float p = std::exp(lp[v]);
    if (!(p > 0.f)) continue;
    cum += p;
    last = v;
    if (cum > u) return v;
  }
  return last;
}

// Rows per task: enough work per task for small vocabularies.
int64_t row_grain(int64_t V) { return std::max<int64_t>(1, 32768 / std::max<int64_t>(V, 1)); }

}  // namespace

void normalize_f32(const float* logits, float* out, int64_t R, int64_t V, float temperature, int64_t top_k,
                   float top_p) {
  if (V == 0) return;
  at::parallel_for(0, R, row_grain(V), [&](int64_t begin, int64_t end) {
    std::vector<uint64_t> keys;
    for (int64_t r = begin; r < end; ++r) {
      normalize_row(logits + r * V, out + r * V, V, temperature, top_k, top_p, keys);
    }
  });
}

void sample_f32(const float* logprobs, int64_t* out, int64_t R, int64_t V, uint64_t seed, uint64_t offset) {
  at::parallel_for(0, R, row_grain(V), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      out[r] = sample_row(logprobs + r * V, V, rng::uniform(seed, offset + static_cast<uint64_t>(r)));
    }
  });
}

}  // namespace mtad::ops::cpu
