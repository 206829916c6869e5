// The inner loop every CPU matrix kernel shares: one weight row (float32, float16 or
// bfloat16, widened to float32 in registers) against one float32 activation row.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <algorithm>
#include <cstdint>

#include "ops/cpu/simd.h"
#include "ops/linear.h"

namespace mtad::ops::cpu {

// Eight weights widened to float32: float32 as is, float16 through F16C, bfloat16 by
// shifting into the high half of a float.
#ifdef MTAD_AVX2
inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
inline __m256 load8(const c10::Half* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline __m256 load8(const c10::BFloat16* p) {
  const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}
#endif

// One panel column, kPanelRows weights widened to float32 (ops/cpu/simd.h's VecF).
#if defined(MTAD_AVX512)
inline VecF loadv(const float* p) { return _mm512_loadu_ps(p); }
inline VecF loadv(const c10::Half* p) {
  return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}
inline VecF loadv(const c10::BFloat16* p) {
  const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}
#elif defined(MTAD_AVX2)
template <class W>
inline VecF loadv(const W* p) {
  return load8(p);
}
#endif
inline float widen(float v) { return v; }
inline float widen(c10::Half v) { return static_cast<float>(v); }
inline float widen(c10::BFloat16 v) { return static_cast<float>(v); }

// Calls f with the weight pointer of m cast to its element type.
template <class F>
inline void with_weights(const Mat& m, F&& f) {
  switch (m.type) {
    case WType::F32: f(static_cast<const float*>(m.w)); break;
    case WType::F16: f(static_cast<const c10::Half*>(m.w)); break;
    default: f(static_cast<const c10::BFloat16*>(m.w)); break;
  }
}

// Rows of x per pass of the streaming kernels: the weights are re-read once per block
// (from cache for all but the largest matrices), the block of x stays in L2.
constexpr int64_t kBlockRows = 32;

// A register tile: up to kTileRows weight rows against up to kTileCols activation rows
// (kTileRowsT1 rows when there is one activation row). Each weight vector loaded feeds
// several activation rows, so a T-token forward costs far less than T single-token ones.
constexpr int kTileRows = 3, kTileCols = 4, kTileRowsT1 = 6;
struct Tile {
  float v[kTileRowsT1][kTileCols];
};

// out.v[r][c] = w[r] . x[c], one accumulator per pair: every dot product is summed in the
// same order whatever the tile shape, so results do not depend on T or on the threads.
template <int R, int C, class W>
inline void dot_tile(const W* const* w, const float* const* x, int64_t K, Tile& out) {
  int64_t k = 0;
#ifdef MTAD_AVX2
  __m256 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = _mm256_setzero_ps();
  for (; k + 8 <= K; k += 8) {
    __m256 wv[R];
    for (int r = 0; r < R; ++r) wv[r] = load8(w[r] + k);
    for (int c = 0; c < C; ++c) {
      const __m256 xv = _mm256_loadu_ps(x[c] + k);
      for (int r = 0; r < R; ++r) acc[r][c] = _mm256_fmadd_ps(wv[r], xv, acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) out.v[r][c] = hsum(acc[r][c]);
#else
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) out.v[r][c] = 0.f;
#endif
  for (; k < K; ++k)
    for (int r = 0; r < R; ++r)
      for (int c = 0; c < C; ++c) out.v[r][c] += widen(w[r][k]) * x[c][k];
}

// dot_tile for a shape known at run time: r <= kTileRows and c <= kTileCols, or
// r <= kTileRowsT1 and c == 1.
template <class W>
inline void dot_tile_dyn(const W* const* w, int r, const float* const* x, int c, int64_t K, Tile& out) {
  switch (r * 8 + c) {
    case 1 * 8 + 1: return dot_tile<1, 1>(w, x, K, out);
    case 1 * 8 + 2: return dot_tile<1, 2>(w, x, K, out);
    case 1 * 8 + 3: return dot_tile<1, 3>(w, x, K, out);
    case 1 * 8 + 4: return dot_tile<1, 4>(w, x, K, out);
    case 2 * 8 + 1: return dot_tile<2, 1>(w, x, K, out);
    case 2 * 8 + 2: return dot_tile<2, 2>(w, x, K, out);
    case 2 * 8 + 3: return dot_tile<2, 3>(w, x, K, out);
    case 2 * 8 + 4: return dot_tile<2, 4>(w, x, K, out);
    case 3 * 8 + 1: return dot_tile<3, 1>(w, x, K, out);
    case 3 * 8 + 2: return dot_tile<3, 2>(w, x, K, out);
    case 3 * 8 + 3: return dot_tile<3, 3>(w, x, K, out);
    case 3 * 8 + 4: return dot_tile<3, 4>(w, x, K, out);
    case 4 * 8 + 1: return dot_tile<4, 1>(w, x, K, out);
    case 5 * 8 + 1: return dot_tile<5, 1>(w, x, K, out);
    default: return dot_tile<6, 1>(w, x, K, out);
  }
}

// Walks weight rows [n0, n1) of a K-column matrix against activation rows [0, T) of x in
// register tiles, calling emit(n, t, dot) for every pair.
template <class W, class Emit>
inline void for_each_dot(const W* w, int64_t K, int64_t n0, int64_t n1, const float* x, int64_t T, Emit&& emit) {
  const int R = T == 1 ? kTileRowsT1 : kTileRows;
  Tile tile;
  for (int64_t t0 = 0; t0 < T; t0 += kBlockRows) {
    const int64_t t1 = std::min(T, t0 + kBlockRows);
    for (int64_t n = n0; n < n1; n += R) {
      const int r = static_cast<int>(std::min<int64_t>(R, n1 - n));
      const W* wr[kTileRowsT1];
      for (int i = 0; i < r; ++i) wr[i] = w + (n + i) * K;
      for (int64_t t = t0; t < t1; t += kTileCols) {
        const int c = static_cast<int>(std::min<int64_t>(kTileCols, t1 - t));
        const float* xr[kTileCols];
        for (int j = 0; j < c; ++j) xr[j] = x + (t + j) * K;
        dot_tile_dyn(wr, r, xr, c, K, tile);
        for (int i = 0; i < r; ++i)
          for (int j = 0; j < c; ++j) emit(n + i, t + j, tile.v[i][j]);
      }
    }
  }
}

// The single dot product, summed in the tiles' order.
template <class W>
inline float dot_row(const W* w, const float* x, int64_t K) {
  Tile tile;
  dot_tile<1, 1>(&w, &x, K, tile);
  return tile.v[0][0];
}

}  // namespace mtad::ops::cpu
