#include "ops/detail/tree_attention.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "ops/cpu/simd.h"

namespace mtad::ops::cpu {

MaskRows mask_rows(const bool* mask, int64_t T, int64_t M) {
  MaskRows r;
  r.off.resize(T + 1, 0);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t j = 0; j < M; ++j)
      if (mask[t * M + j]) r.idx.push_back(static_cast<int32_t>(j));
    r.off[t + 1] = static_cast<int64_t>(r.idx.size());
  }
  return r;
}

namespace {

// p[i] = exp(p[i] - mx) in place; returns their sum.
float exp_shifted(float* p, int64_t n, float mx) {
  int64_t i = 0;
  float sum = 0.f;
#ifdef MTAD_AVX2
  const __m256 m = _mm256_set1_ps(mx);
  __m256 acc = _mm256_setzero_ps();
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(p + i), m));
    _mm256_storeu_ps(p + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  sum = hsum(acc);
#endif
  for (; i < n; ++i) {
    p[i] = std::exp(p[i] - mx);
    sum += p[i];
  }
  return sum;
}

// f(std::integral_constant<int, n>) for a head count n in [1, 4] known only at run time, so
// that the kernels below keep their per-head sums in registers.
template <class F>
void with_heads(int64_t n, F&& f) {
  switch (n) {
    case 1: f(std::integral_constant<int, 1>{}); break;
    case 2: f(std::integral_constant<int, 2>{}); break;
    case 3: f(std::integral_constant<int, 3>{}); break;
    default: f(std::integral_constant<int, 4>{}); break;
  }
}

#ifdef MTAD_AVX2
// dot4 for JN heads (query rows q + j * D) against the same four key rows: each key chunk is
// loaded once for all heads (dot4 per head loaded it again for each). Every score is the
// same FMA chain and the same reduction as dot4's, so it does not depend on JN.
template <int JN>
void dot4_group(const float* q, int64_t D, const float* const r[4], float out[][4]) {
  __m256 a[JN][4];
  for (int j = 0; j < JN; ++j)
    for (int u = 0; u < 4; ++u) a[j][u] = _mm256_setzero_ps();
  int64_t d = 0;
  for (; d + 8 <= D; d += 8) {
    __m256 kr[4];
    for (int u = 0; u < 4; ++u) kr[u] = _mm256_loadu_ps(r[u] + d);
    for (int j = 0; j < JN; ++j) {
      const __m256 x = _mm256_loadu_ps(q + j * D + d);
      for (int u = 0; u < 4; ++u) a[j][u] = _mm256_fmadd_ps(x, kr[u], a[j][u]);
    }
  }
  for (int j = 0; j < JN; ++j) {
    const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a[j][0], a[j][1]), _mm256_hadd_ps(a[j][2], a[j][3]));
    _mm_storeu_ps(out[j], _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
    for (int u = 0; u < 4; ++u)
      for (int64_t e = d; e < D; ++e) out[j][u] += q[j * D + e] * r[u][e];
  }
}
#endif

// out[j][u] = dot4 of query row j < nh (q + j * D) with key row u.
inline void dot4_heads(const float* q, int64_t D, const float* const r[4], int64_t nh, float out[][4]) {
#ifdef MTAD_AVX2
  // As many heads per pass as registers hold: 4 accumulators each, plus the four key chunks.
#ifdef MTAD_AVX512
  constexpr int64_t kHeads = 4;  // 32 vector registers
#else
  constexpr int64_t kHeads = 2;  // 16
#endif
  for (int64_t j0 = 0; j0 < nh; j0 += kHeads)
    with_heads(std::min(kHeads, nh - j0), [&](auto jn) { dot4_group<jn()>(q + j0 * D, D, r, out + j0); });
#else
  for (int64_t j = 0; j < nh; ++j) dot4(q + j * D, r, D, out[j]);
#endif
}

#ifdef MTAD_AVX2
// Value columns [d0, d0 + 16) of JN heads: 2 JN sums in registers (a count known at compile
// time: with a run-time count the compiler kept them on the stack, each FMA a store and a
// load), one load of each value register per key serving every head.
template <int JN, class Row>
void weighted_cols16(const float* w, int64_t n, Row& row, int64_t d0, float* out, int64_t D) {
  __m256 acc[JN][2];
  for (int j = 0; j < JN; ++j) acc[j][0] = acc[j][1] = _mm256_setzero_ps();
  for (int64_t i = 0; i < n; ++i) {
    const float* r = row(i) + d0;
    const __m256 v0 = _mm256_loadu_ps(r), v1 = _mm256_loadu_ps(r + 8);
    for (int j = 0; j < JN; ++j) {
      const __m256 p = _mm256_broadcast_ss(w + j * n + i);
      acc[j][0] = _mm256_fmadd_ps(p, v0, acc[j][0]);
      acc[j][1] = _mm256_fmadd_ps(p, v1, acc[j][1]);
    }
  }
  for (int j = 0; j < JN; ++j) {
    _mm256_storeu_ps(out + j * D + d0, acc[j][0]);
    _mm256_storeu_ps(out + j * D + d0 + 8, acc[j][1]);
  }
}
#endif

// out[j * D + d] = sum_i w[j * n + i] * row(i)[d] for heads j < nh (overwritten). Each sum is
// one FMA chain over i in order, whichever heads share the pass.
#ifdef MTAD_AVX512
// Value columns [d0, d0 + 64) of JN heads in 512-bit registers: a key's four cache lines
// read once per pass (16 columns per pass read each value row four times, from L2).
// Lane-wise FMAs: each column's sum is the same chain as in the 8-lane code.
template <int JN, class Row>
void weighted_cols64(const float* w, int64_t n, Row& row, int64_t d0, float* out, int64_t D) {
  __m512 acc[JN][4];
  for (int j = 0; j < JN; ++j)
    for (int c = 0; c < 4; ++c) acc[j][c] = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; ++i) {
    const float* r = row(i) + d0;
    __m512 v[4];
    for (int c = 0; c < 4; ++c) v[c] = _mm512_loadu_ps(r + 16 * c);
    for (int j = 0; j < JN; ++j) {
      const __m512 p = _mm512_set1_ps(w[j * n + i]);
      for (int c = 0; c < 4; ++c) acc[j][c] = _mm512_fmadd_ps(p, v[c], acc[j][c]);
    }
  }
  for (int j = 0; j < JN; ++j)
    for (int c = 0; c < 4; ++c) _mm512_storeu_ps(out + j * D + d0 + 16 * c, acc[j][c]);
}
#endif

template <class Row>
void weighted_rows(const float* w, int64_t n, int64_t nh, Row&& row, int64_t D, float* out) {
  int64_t d0 = 0;
#ifdef MTAD_AVX2
  constexpr int64_t kHeads = 4;
#ifdef MTAD_AVX512
  for (; d0 + 64 <= D; d0 += 64) {
    for (int64_t j0 = 0; j0 < nh; j0 += kHeads)
      with_heads(std::min(kHeads, nh - j0),
                 [&](auto jn) { weighted_cols64<jn()>(w + j0 * n, n, row, d0, out + j0 * D, D); });
  }
#endif
  for (; d0 + 16 <= D; d0 += 16) {
    for (int64_t j0 = 0; j0 < nh; j0 += kHeads)
      with_heads(std::min(kHeads, nh - j0),
                 [&](auto jn) { weighted_cols16<jn()>(w + j0 * n, n, row, d0, out + j0 * D, D); });
  }
#endif
  for (; d0 < D; ++d0)
    for (int64_t j = 0; j < nh; ++j) {
      float s = 0.f;
      for (int64_t i = 0; i < n; ++i) s += w[j * n + i] * row(i)[d0];
      out[j * D + d0] = s;
    }
}

}  // namespace

void tree_attention_tasks_f32(const float* q, const float* k, const float* v, const MaskRows* rows, float* out,
                              int64_t H, int64_t KVH, int64_t D, int64_t prefix, float scale, int64_t task0,
                              int64_t task1, float* scores) {
  const int64_t group = H / KVH, stride = KVH * D;
  for (int64_t task = task0; task < task1;) {
    // The heads of one kv group for one row, as far as this share goes, walk the key and
    // value rows together: each row is read from memory once for all of them.
    const int64_t t = task / H, h0 = task % H, g = h0 / group;
    const int64_t nh = std::min({(g + 1) * group, h0 + (task1 - task), h0 + kMaxGroup}) - h0;
    task += nh;
    // Slots seen: [0, dense) in order, then the listed masked slots (causal: up to t itself).
    const int64_t dense = prefix + (rows ? 0 : t + 1);
    const int32_t* listed = rows ? rows->idx.data() + rows->off[t] : nullptr;
    const int64_t n = dense + (rows ? rows->off[t + 1] - rows->off[t] : 0);
    auto slot = [&](int64_t i) { return i < dense ? i : prefix + listed[i - dense]; };
    float* o0 = out + t * H * D + h0 * D;
    if (n == 0) {  // attends to nothing (otherwise weighted_rows writes every output)
      for (int64_t d = 0; d < nh * D; ++d) o0[d] = 0.f;
      continue;
    }
    const float* q0 = q + (t * H + h0) * D;
    float mx[kMaxGroup];
    for (int64_t j = 0; j < nh; ++j) mx[j] = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < n; i += 4) {
      const float* r[4];
      for (int j = 0; j < 4; ++j) r[j] = k + slot(std::min(i + j, n - 1)) * stride + g * D;
      float s4[kMaxGroup][4];
      dot4_heads(q0, D, r, nh, s4);
      for (int64_t j = 0; j < nh; ++j) {
        float* sc = scores + j * n;
        for (int64_t u = 0; u < 4 && i + u < n; ++u) {
          sc[i + u] = scale * s4[j][u];
          mx[j] = std::max(mx[j], sc[i + u]);
        }
      }
    }
    float sum[kMaxGroup];
    for (int64_t j = 0; j < nh; ++j) sum[j] = exp_shifted(scores + j * n, n, mx[j]);
    // out_j = sum_i p_ji v_i, a few value columns at a time for all heads of the group, the
    // sums kept in registers while the value rows stream past.
    weighted_rows(scores, n, nh, [&](int64_t i) { return v + slot(i) * stride + g * D; }, D, o0);
    for (int64_t j = 0; j < nh; ++j) {
      const float inv = 1.f / sum[j];
      for (int64_t d = 0; d < D; ++d) o0[j * D + d] *= inv;
    }
  }
}

void tree_attention_f32(const float* q, const float* k, const float* v, const bool* mask, float* out, int64_t T,
                        int64_t M, int64_t H, int64_t KVH, int64_t D, int64_t prefix, float scale) {
  const int64_t L = prefix + M;
  const MaskRows rows = mask ? mask_rows(mask, T, M) : MaskRows{};
  // One task per (query, head).
  at::parallel_for(0, T * H, grain_for(2 * L * D), [&](int64_t begin, int64_t end) {
    std::vector<float> scores(scores_floats(L, H, KVH));
    tree_attention_tasks_f32(q, k, v, mask ? &rows : nullptr, out, H, KVH, D, prefix, scale, begin, end,
                             scores.data());
  });
}

}  // namespace mtad::ops::cpu
