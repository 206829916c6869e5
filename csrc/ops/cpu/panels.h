// Weight matrices in panels of 8 rows, the layout the CPU stack multiplies fastest.
//
// A panel holds 8 output rows interleaved by column, [K][8]: one 32-byte load gives the
// same column of 8 rows, and one broadcast activation feeds all 8 (no horizontal sums).
// A register tile of NV panels x TB activation rows keeps NV * TB accumulators live;
// each weight vector loaded serves TB tokens, each broadcast NV panels. A tree of T
// tokens thus reads the weights once and runs near the FMA peak from T of about 4
// (weights in the caches; bench/kernel_peak prints how near, and how far from memory).
//
// Lane j of panel p is row 8p + j (PanelOrder::kRows), or, for RoPE'd projections
// (kRopePairs), lanes 0-3 are the first rows of the rotated pairs 4p .. 4p + 3 and lanes
// 4-7 their partners (pair u = h * D/2 + i is rows h * D + i and h * D + i + D/2), so
// a pair's two dot products come out of one tile.
//
// Every dot product is one chain of FMAs over k in order, whatever the tile shape: the
// results do not depend on T or on how rows are split across threads.
#pragma once

#include <algorithm>
#include <cstdint>

#include "ops/cpu/matvec.h"

namespace mtad::ops::cpu {

constexpr int kPanelRows = 8;
constexpr int kMaxTileAcc = 12;  // accumulators per tile: 12 + operands fit 16 registers

#ifdef MTAD_AVX2
// Keeps v in a register: without it GCC folds a weight load into each FMA that uses it,
// and a tile then issues one load per FMA instead of one per weight vector (the load ports,
// not the FMA units, become the limit: 16 loads per 12 FMAs in a 3 x 4 tile).
#define MTAD_PIN(v) asm("" : "+x"(v))

// One k step of a tile: NV weight vectors against TB broadcast activations.
template <int NV, int TB, class W>
__attribute__((always_inline)) inline void panel_step(__m256 (&acc)[NV][TB], const W* w, int64_t K, const float* x,
                                                      int64_t ldx, int64_t k) {
  if constexpr (NV >= TB) {
    // Few tokens: their broadcasts stay in registers, weights stream through.
    __m256 xb[TB];
#pragma GCC unroll 8
    for (int t = 0; t < TB; ++t) xb[t] = _mm256_broadcast_ss(x + t * ldx + k);
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      __m256 wv = load8(w + v * kPanelRows * K + k * kPanelRows);
      if constexpr (TB > 1) MTAD_PIN(wv);
#pragma GCC unroll 8
      for (int t = 0; t < TB; ++t) acc[v][t] = _mm256_fmadd_ps(wv, xb[t], acc[v][t]);
    }
  } else {
    // Many tokens: the weight vectors stay in registers, broadcasts stream through.
    __m256 wv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      wv[v] = load8(w + v * kPanelRows * K + k * kPanelRows);
      MTAD_PIN(wv[v]);
    }
#pragma GCC unroll 8
    for (int t = 0; t < TB; ++t) {
      const __m256 xb = _mm256_broadcast_ss(x + t * ldx + k);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[v][t] = _mm256_fmadd_ps(wv[v], xb, acc[v][t]);
    }
  }
}
#undef MTAD_PIN
#endif

// Cache lines [first, first + count) from `base` to request while a tile runs: a share of
// the next tile's weights. Reading weights from memory, a tile of several tokens has so
// many FMAs per cache line that the out-of-order window holds few loads in flight and the
// memory bus idles between them; requesting the next tile during this one overlaps part
// of its transfer with this tile's arithmetic (single thread, weights from memory: 2 x 6
// tiles at T = 16 13-21 -> 22-28 GMAC/s, 3 x 4 at T = 8 10-11 -> 11-14, noisy machine).
struct Prefetch {
  const char* base = nullptr;
  int64_t first = 0, count = 0;
};

// The tile of NV panels starting at w (panel v at w + v * 8K) against TB rows of x:
// out[t * NV * 8 + v * 8 + lane] = x[t] . (row `lane` of panel v). The prefetches are
// spread evenly over the k loop.
template <int NV, int TB, class W>
inline void panel_tile(const W* w, int64_t K, const float* x, int64_t ldx, float* out, Prefetch pf) {
  static_assert(NV * TB <= kMaxTileAcc, "tile too large for the register file");
#ifdef MTAD_AVX2
  __m256 acc[NV][TB];
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v)
#pragma GCC unroll 8
    for (int t = 0; t < TB; ++t) acc[v][t] = _mm256_setzero_ps();
  // Bresenham: `count` lines over K steps, in order.
  const char* line = pf.base + pf.first * 64;
  int64_t owed = 0;
  for (int64_t k = 0; k < K; ++k) {
    owed += pf.count;
    while (owed >= K) {
      _mm_prefetch(line, _MM_HINT_T0);
      line += 64;
      owed -= K;
    }
    panel_step<NV, TB>(acc, w, K, x, ldx, k);
  }
#pragma GCC unroll 8
  for (int t = 0; t < TB; ++t)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) _mm256_storeu_ps(out + (t * NV + v) * kPanelRows, acc[v][t]);
#else
  (void)pf;
  for (int t = 0; t < TB; ++t)
    for (int v = 0; v < NV; ++v)
      for (int j = 0; j < kPanelRows; ++j) {
        float s = 0.f;
        for (int64_t k = 0; k < K; ++k) s += widen(w[v * kPanelRows * K + k * kPanelRows + j]) * x[t * ldx + k];
        out[(t * NV + v) * kPanelRows + j] = s;
      }
#endif
}

// panel_tile for a shape known at run time (nv * tb <= kMaxTileAcc, tb <= 6, nv <= 8).
template <class W>
inline void panel_tile_dyn(const W* w, int nv, int tb, int64_t K, const float* x, int64_t ldx, float* out,
                           Prefetch pf = {}) {
#define MTAD_PANEL_CASE(NV, TB) \
  case NV * 8 + TB:             \
    return panel_tile<NV, TB>(w, K, x, ldx, out, pf);
  switch (nv * 8 + tb) {
    MTAD_PANEL_CASE(1, 1) MTAD_PANEL_CASE(2, 1) MTAD_PANEL_CASE(3, 1) MTAD_PANEL_CASE(4, 1)
    MTAD_PANEL_CASE(5, 1) MTAD_PANEL_CASE(6, 1) MTAD_PANEL_CASE(7, 1) MTAD_PANEL_CASE(8, 1)
    MTAD_PANEL_CASE(1, 2) MTAD_PANEL_CASE(2, 2) MTAD_PANEL_CASE(3, 2) MTAD_PANEL_CASE(4, 2)
    MTAD_PANEL_CASE(5, 2) MTAD_PANEL_CASE(6, 2)
    MTAD_PANEL_CASE(1, 3) MTAD_PANEL_CASE(2, 3) MTAD_PANEL_CASE(3, 3) MTAD_PANEL_CASE(4, 3)
    MTAD_PANEL_CASE(1, 4) MTAD_PANEL_CASE(2, 4) MTAD_PANEL_CASE(3, 4)
    MTAD_PANEL_CASE(1, 5) MTAD_PANEL_CASE(2, 5)
    MTAD_PANEL_CASE(1, 6) MTAD_PANEL_CASE(2, 6)
    default: break;
  }
#undef MTAD_PANEL_CASE
}

// The largest tile buffer panel_tile_dyn writes.
constexpr int kPanelTileFloats = kMaxTileAcc * kPanelRows;

// Tiles prefetch the next tile's weights when they serve at least this many activation
// rows per weight vector (at most 3 panels). Tiles of more panels and fewer rows stream
// weights with few FMAs per cache line: the hardware keeps the bus busy alone, and the
// extra requests measured slower (a 6 x 2 tile 20-40%, an 8 x 1 tile 2x).
constexpr int64_t kPrefetchMinRows = 4;

// Walks panels [p0, p1) of a matrix with K columns and `elem` bytes per weight against
// activation rows [0, T) in register tiles, calling tile(p, nv, t, tb, pf) for each:
// panels p .. p + nv - 1 against rows t .. t + tb - 1, pf the tile's share (its group's) of
// the next tile's cache lines, relative to panel p0.
// Rows go in blocks of kBlockRows (a block of x stays in L2 while a panel group, in L1/L2,
// serves all of it); within a block, in balanced groups of at most 6.
template <class Tile>
inline void for_each_panel_tile(int64_t p0, int64_t p1, int64_t K, int64_t elem, int64_t T, Tile&& tile) {
  const int64_t panel_lines = K * kPanelRows * elem / 64;
  for (int64_t t0 = 0; t0 < T; t0 += kBlockRows) {
    const int64_t rows = std::min(T - t0, kBlockRows);
    const int64_t groups = (rows + 5) / 6, widest = (rows + groups - 1) / groups;
    // Fewer tokens, more panels per tile: as many FMA chains as the registers hold (a
    // 2 x 4 tile measured 20% slower than 3 x 4 at T = 8).
    const int nv = static_cast<int>(std::min<int64_t>(8, kMaxTileAcc / widest));
    for (int64_t p = p0; p < p1; p += nv) {
      const int n = static_cast<int>(std::min<int64_t>(nv, p1 - p));
      // The next tile's lines, spread over this tile's groups.
      const int64_t next_lines = widest >= kPrefetchMinRows ? std::min<int64_t>(nv, p1 - p - n) * panel_lines : 0;
      const int64_t next_first = (p + n - p0) * panel_lines;
      for (int64_t g = 0, t = t0; g < groups; ++g) {
        const int tb = static_cast<int>(rows * (g + 1) / groups - rows * g / groups);
        const int64_t lo = next_lines * g / groups, hi = next_lines * (g + 1) / groups;
        tile(p, n, t, tb, next_first + lo, hi - lo);
        t += tb;
      }
    }
  }
}

}  // namespace mtad::ops::cpu
