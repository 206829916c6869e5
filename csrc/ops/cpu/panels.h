// Weight matrices in panels of kPanelRows rows, the layout the CPU stack multiplies fastest.
//
// A panel holds one vector register's worth of output rows (8 with AVX2, 16 with AVX-512)
// interleaved by column, [K][kPanelRows]: one vector load gives the same column of all its
// rows, and one broadcast activation feeds them all (no horizontal sums).
// A register tile of NV panels x TB activation rows keeps NV * TB accumulators live;
// each weight vector loaded serves TB tokens, each broadcast NV panels. A tree of T
// tokens thus reads the weights once and runs near the FMA peak from T of about 4
// (weights in the caches; bench/kernel_peak prints how near, and how far from memory).
//
// Lane j of panel p is row p * kPanelRows + j (Layout::kPanels), or, for RoPE'd projections
// (kRopePanels), the first half of the lanes are the first rows of kPanelRows / 2 rotated
// pairs and the second half their partners (pair u = h * D/2 + i is rows h * D + i and h * D + i + D/2), so
// a pair's two dot products come out of one tile.
//
// Every dot product is one chain of FMAs over k in order, whatever the tile shape: the
// results do not depend on T or on how rows are split across threads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include "ops/cpu/matvec.h"

namespace mtad::ops::cpu {

constexpr int kPanelRows = kVecLanes;
// Accumulators per tile: with their operands they fit the register file (16 AVX2
// registers, 32 AVX-512 ones).
// kMaxGroupRows: the most activation rows one tile serves; a tree of up to that many
// tokens reads each weight once, straight from memory.
#ifdef MTAD_AVX512
constexpr int kMaxTileAcc = 24, kMaxGroupRows = 8;
#else
constexpr int kMaxTileAcc = 12, kMaxGroupRows = 6;
#endif

#ifdef MTAD_AVX2
// Keeps v in a register: without it GCC folds a weight load into each FMA that uses it,
// and a tile then issues one load per FMA instead of one per weight vector (the load ports,
// not the FMA units, become the limit: 16 loads per 12 FMAs in a 3 x 4 tile).
#ifdef MTAD_AVX512
#define MTAD_PIN(v) asm("" : "+v"(v))  // any of the 32 vector registers
#else
#define MTAD_PIN(v) asm("" : "+x"(v))
#endif

// One k step of a tile: NV weight vectors against TB broadcast activations.
template <int NV, int TB, class W>
__attribute__((always_inline)) inline void panel_step(VecF (&acc)[NV][TB], const W* w, int64_t K, const float* x,
                                                      int64_t ldx, int64_t k) {
  if constexpr (NV >= TB) {
    // Few tokens: their broadcasts stay in registers, weights stream through.
    VecF xb[TB];
#pragma GCC unroll 8
    for (int t = 0; t < TB; ++t) xb[t] = vbroadcast(x + t * ldx + k);
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      VecF wv = loadv(w + v * kPanelRows * K + k * kPanelRows);
      if constexpr (TB > 1) MTAD_PIN(wv);
#pragma GCC unroll 8
      for (int t = 0; t < TB; ++t) acc[v][t] = vfmadd(wv, xb[t], acc[v][t]);
    }
  } else {
    // Many tokens: the weight vectors stay in registers, broadcasts stream through.
    VecF wv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      wv[v] = loadv(w + v * kPanelRows * K + k * kPanelRows);
      MTAD_PIN(wv[v]);
    }
#pragma GCC unroll 8
    for (int t = 0; t < TB; ++t) {
      const VecF xb = vbroadcast(x + t * ldx + k);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) acc[v][t] = vfmadd(wv[v], xb, acc[v][t]);
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
// Where the next tile's lines go: AVX-512 tiles (3 panels of 16 rows: 55-110 KB) do not
// fit L1 beside the current one, so they are requested into L2 (measured 5-10 % faster at
// T = 8 than into L1 on an AVX-512 machine, weights streamed).
#ifdef MTAD_AVX512
#define MTAD_PF_HINT _MM_HINT_T1
#else
#define MTAD_PF_HINT _MM_HINT_T0
#endif
struct Prefetch {
  const char* base = nullptr;
  int64_t first = 0, count = 0;
};

// The tile of NV panels starting at w (panel v at w + v * kPanelRows * K) against TB rows
// of x: out[(t * NV + v) * kPanelRows + lane] = x[t] . (row `lane` of panel v). The prefetches are
// spread evenly over the k loop.
template <int NV, int TB, class W>
inline void panel_tile(const W* w, int64_t K, const float* x, int64_t ldx, float* out, Prefetch pf) {
  static_assert(NV * TB <= kMaxTileAcc, "tile too large for the register file");
#ifdef MTAD_AVX2
  VecF acc[NV][TB];
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v)
#pragma GCC unroll 8
    for (int t = 0; t < TB; ++t) acc[v][t] = vzero();
  // Bresenham: `count` lines over K steps, in order.
  const char* line = pf.base + pf.first * 64;
  int64_t owed = 0;
  for (int64_t k = 0; k < K; ++k) {
    owed += pf.count;
    while (owed >= K) {
      _mm_prefetch(line, MTAD_PF_HINT);
      line += 64;
      owed -= K;
    }
    panel_step<NV, TB>(acc, w, K, x, ldx, k);
  }
#pragma GCC unroll 8
  for (int t = 0; t < TB; ++t)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) vstore(out + (t * NV + v) * kPanelRows, acc[v][t]);
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

// panel_tile for a shape known at run time (nv <= 8, tb <= kMaxGroupRows, nv * tb <= kMaxTileAcc).
template <int NV, int TB, class W>
inline void panel_tile_if_fits(const W* w, int64_t K, const float* x, int64_t ldx, float* out, Prefetch pf) {
  if constexpr (NV * TB <= kMaxTileAcc && TB <= kMaxGroupRows) panel_tile<NV, TB>(w, K, x, ldx, out, pf);
  else std::abort();  // for_each_panel_tile never asks for it
}
template <class W>
inline void panel_tile_dyn(const W* w, int nv, int tb, int64_t K, const float* x, int64_t ldx, float* out,
                           Prefetch pf = {}) {
#define MTAD_PANEL_CASE(NV, TB) \
  case NV * 16 + TB:            \
    return panel_tile_if_fits<NV, TB>(w, K, x, ldx, out, pf);
#define MTAD_PANEL_ROW(NV) \
  MTAD_PANEL_CASE(NV, 1) MTAD_PANEL_CASE(NV, 2) MTAD_PANEL_CASE(NV, 3) MTAD_PANEL_CASE(NV, 4) MTAD_PANEL_CASE(NV, 5) \
  MTAD_PANEL_CASE(NV, 6) MTAD_PANEL_CASE(NV, 7) MTAD_PANEL_CASE(NV, 8)
  switch (nv * 16 + tb) {
    MTAD_PANEL_ROW(1) MTAD_PANEL_ROW(2) MTAD_PANEL_ROW(3) MTAD_PANEL_ROW(4)
    MTAD_PANEL_ROW(5) MTAD_PANEL_ROW(6) MTAD_PANEL_ROW(7) MTAD_PANEL_ROW(8)
    default: std::abort();
  }
#undef MTAD_PANEL_ROW
#undef MTAD_PANEL_CASE
}

// The largest tile buffer panel_tile_dyn writes.
constexpr int kPanelTileFloats = kMaxTileAcc * kPanelRows;

// Tiles prefetch the next tile's weights when they serve at least this many activation
// rows per weight vector. Tiles of more panels and fewer rows stream
// weights with few FMAs per cache line: the hardware keeps the bus busy alone, and the
// extra requests measured slower (a 6 x 2 tile 20-40%, an 8 x 1 tile 2x).
// With AVX-512 a 4-row tile measured faster without them (weights streamed: 10-11 vs
// 11.5-13 ms per float16 pass).
#ifdef MTAD_AVX512
constexpr int64_t kPrefetchMinRows = 6;
#else
constexpr int64_t kPrefetchMinRows = 4;
#endif

// Walks panels [p0, p1) of a matrix with K columns and `elem` bytes per weight against
// activation rows [0, T) in register tiles, calling tile(p, nv, t, tb, pf) for each:
// panels p .. p + nv - 1 against rows t .. t + tb - 1, pf the tile's share (its group's) of
// the next tile's cache lines, relative to panel p0.
// Rows go in blocks of kBlockRows (a block of x stays in L2 while a panel group, in L1/L2,
// serves all of it); within a block, in balanced groups of at most kMaxGroupRows.
template <class Tile>
inline void for_each_panel_tile(int64_t p0, int64_t p1, int64_t K, int64_t elem, int64_t T, Tile&& tile) {
  const int64_t panel_lines = K * kPanelRows * elem / 64;
  for (int64_t t0 = 0; t0 < T; t0 += kBlockRows) {
    const int64_t rows = std::min(T - t0, kBlockRows);
    const int64_t groups = (rows + kMaxGroupRows - 1) / kMaxGroupRows, widest = (rows + groups - 1) / groups;
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
