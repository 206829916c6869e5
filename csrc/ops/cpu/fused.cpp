#include "ops/fused.h"

#include <cmath>
#include <type_traits>

#include "ops/cpu/matvec.h"
#include "ops/cpu/panels.h"

namespace mtad::ops::cpu {
namespace {

inline float silu_times(float g, float u) { return g / (1.f + std::exp(-g)) * u; }

template <class W>
void gate_up_impl(const float* x, int64_t T, const W* wg, const W* wu, const float* bg, const float* bu, int64_t K,
                  int64_t N, float* out, int64_t n0, int64_t n1) {
  const int R = T == 1 ? kTileRowsT1 : kTileRows;
  Tile g, u;
  for (int64_t t0 = 0; t0 < T; t0 += kBlockRows) {
    const int64_t t1 = std::min(T, t0 + kBlockRows);
    for (int64_t n = n0; n < n1; n += R) {
      const int r = static_cast<int>(std::min<int64_t>(R, n1 - n));
      const W *gr[kTileRowsT1], *ur[kTileRowsT1];
      for (int i = 0; i < r; ++i) gr[i] = wg + (n + i) * K, ur[i] = wu + (n + i) * K;
      for (int64_t t = t0; t < t1; t += kTileCols) {
        const int c = static_cast<int>(std::min<int64_t>(kTileCols, t1 - t));
        const float* xr[kTileCols];
        for (int j = 0; j < c; ++j) xr[j] = x + (t + j) * K;
        dot_tile_dyn(gr, r, xr, c, K, g);
        dot_tile_dyn(ur, r, xr, c, K, u);
        for (int i = 0; i < r; ++i) {
          const float gb = bg ? bg[n + i] : 0.f, ub = bu ? bu[n + i] : 0.f;
          for (int j = 0; j < c; ++j) out[(t + j) * N + n + i] = silu_times(g.v[i][j] + gb, u.v[i][j] + ub);
        }
      }
    }
  }
}

// The same on panels (ops/cpu/panels.h); n0 is a multiple of kPanelRows.
template <class W>
void gate_up_panels(const float* x, int64_t T, const W* wg, const W* wu, const float* bg, const float* bu, int64_t K,
                    int64_t N, float* out, int64_t n0, int64_t n1) {
  alignas(32) float g[kPanelTileFloats], u[kPanelTileFloats];
  const int64_t p0 = n0 / kPanelRows;
  const char* gfrom = reinterpret_cast<const char*>(wg + p0 * kPanelRows * K);
  const char* ufrom = reinterpret_cast<const char*>(wu + p0 * kPanelRows * K);
  for_each_panel_tile(p0, (n1 + kPanelRows - 1) / kPanelRows, K, sizeof(W), T,
                      [&](int64_t p, int nv, int64_t t0, int tb, int64_t pf_first, int64_t pf_count) {
    panel_tile_dyn(wg + p * kPanelRows * K, nv, tb, K, x + t0 * K, K, g, Prefetch{gfrom, pf_first, pf_count});
    panel_tile_dyn(wu + p * kPanelRows * K, nv, tb, K, x + t0 * K, K, u, Prefetch{ufrom, pf_first, pf_count});
    const int64_t first = p * kPanelRows, last = std::min(n1, first + nv * kPanelRows);
    for (int j = 0; j < tb; ++j) {
      const int64_t o = j * nv * kPanelRows - first;
      for (int64_t n = first; n < last; ++n)
        out[(t0 + j) * N + n] = silu_times(g[o + n] + (bg ? bg[n] : 0.f), u[o + n] + (bu ? bu[n] : 0.f));
    }
  });
}

// RoPE'd projection on pair panels (Layout::kRopePanels): lanes j and j + kPairs of a panel
// are the two rows of pair kPairs * p + j (kPairs = kPanelRows / 2). Units are pairs; u0
// is a multiple of kPairs.
template <class W>
void proj_panels(const float* x, int64_t T, const W* w, const float* b, int64_t K, int64_t D, const float* cs,
                 const float* sn, float* y, int64_t ldy, int64_t u0, int64_t u1) {
  constexpr int kPairs = kPanelRows / 2;
  const int64_t half = D / 2;
  alignas(32) float out[kPanelTileFloats];
  const int64_t p0 = u0 / kPairs;
  const char* from = reinterpret_cast<const char*>(w + p0 * kPanelRows * K);
  for_each_panel_tile(p0, (u1 + kPairs - 1) / kPairs, K, sizeof(W), T,
                      [&](int64_t p, int nv, int64_t t0, int tb, int64_t pf_first, int64_t pf_count) {
    panel_tile_dyn(w + p * kPanelRows * K, nv, tb, K, x + t0 * K, K, out, Prefetch{from, pf_first, pf_count});
    for (int v = 0; v < nv; ++v)
      for (int j = 0; j < kPairs; ++j) {
        const int64_t u = (p + v) * kPairs + j;
        if (u >= u1) break;
        const int64_t i = u % half, r0 = (u / half) * D + i, r1 = r0 + half;
        const float b0 = b ? b[r0] : 0.f, b1 = b ? b[r1] : 0.f;
        for (int q = 0; q < tb; ++q) {
          const int64_t t = t0 + q;
          const float* o = out + (q * nv + v) * kPanelRows;
          const float a = o[j] + b0, c = o[j + kPairs] + b1;
          const float co = cs[t * half + i], si = sn[t * half + i];
          // The same rotation as ops/cpu/rope.cpp (rotate-half pairing).
          y[t * ldy + r0] = a * co - c * si;
          y[t * ldy + r1] = c * co + a * si;
        }
      }
  });
}

// Rotated row pairs (r0, r1) of one head: a tile holds the pairs of up to `per` units.
template <class W>
void proj_impl(const float* x, int64_t T, const W* w, const float* b, int64_t K, int64_t D, const float* cs,
               const float* sn, float* y, int64_t ldy, int64_t u0, int64_t u1) {
  const int64_t half = D / 2;
  const int per = T == 1 ? kTileRowsT1 / 2 : 1;
  Tile tile;
  for (int64_t t0 = 0; t0 < T; t0 += kBlockRows) {
    const int64_t t1 = std::min(T, t0 + kBlockRows);
    for (int64_t u = u0; u < u1; u += per) {
      const int m = static_cast<int>(std::min<int64_t>(per, u1 - u));
      const W* wr[kTileRowsT1];
      int64_t rows[kTileRowsT1];
      for (int q = 0; q < m; ++q) {
        const int64_t i = (u + q) % half, r0 = ((u + q) / half) * D + i;
        rows[2 * q] = r0, rows[2 * q + 1] = r0 + half;
        wr[2 * q] = w + r0 * K, wr[2 * q + 1] = w + (r0 + half) * K;
      }
      for (int64_t t = t0; t < t1; t += kTileCols) {
        const int c = static_cast<int>(std::min<int64_t>(kTileCols, t1 - t));
        const float* xr[kTileCols];
        for (int j = 0; j < c; ++j) xr[j] = x + (t + j) * K;
        dot_tile_dyn(wr, 2 * m, xr, c, K, tile);
        for (int q = 0; q < m; ++q) {
          const int64_t r0 = rows[2 * q], r1 = rows[2 * q + 1], i = (u + q) % half;
          const float b0 = b ? b[r0] : 0.f, b1 = b ? b[r1] : 0.f;
          for (int j = 0; j < c; ++j) {
            const float a = tile.v[2 * q][j] + b0, cc = tile.v[2 * q + 1][j] + b1;
            const float co = cs[(t + j) * half + i], si = sn[(t + j) * half + i];
            // The same rotation as ops/cpu/rope.cpp (rotate-half pairing).
            y[(t + j) * ldy + r0] = a * co - cc * si;
            y[(t + j) * ldy + r1] = cc * co + a * si;
          }
        }
      }
    }
  }
}

}  // namespace

void gate_up_rows(const float* x, int64_t T, const Mat& gate, const Mat& up, float* out, int64_t n0, int64_t n1) {
  with_weights(gate, [&](auto wg) {
    using W = std::remove_cv_t<std::remove_pointer_t<decltype(wg)>>;
    const W* wu = static_cast<const W*>(up.w);
    if (gate.layout == Layout::kPanels)
      gate_up_panels(x, T, wg, wu, gate.bias, up.bias, gate.cols, gate.rows, out, n0, n1);
    else
      gate_up_impl(x, T, wg, wu, gate.bias, up.bias, gate.cols, gate.rows, out, n0, n1);
  });
}

void rope_tables(const int64_t* positions, const float* inv_freq, int64_t T, int64_t half, float* cos_out,
                 float* sin_out) {
  for (int64_t t = 0; t < T; ++t)
    for (int64_t i = 0; i < half; ++i) {
      // The angle is a float32 product, as in the reference implementation.
      const float angle = float(positions[t]) * inv_freq[i];
      cos_out[t * half + i] = std::cos(angle);
      sin_out[t * half + i] = std::sin(angle);
    }
}

void proj_rows(const float* x, int64_t T, const Mat& m, int64_t head_dim, const float* rope_cos,
               const float* rope_sin, float* y, int64_t ldy, int64_t u0, int64_t u1) {
  if (!rope_cos) return matvec_rows(x, T, m, Epilogue::kStore, y, ldy, nullptr, 0, u0, u1);
  with_weights(m, [&](auto w) {
    if (m.layout == Layout::kRopePanels)
      proj_panels(x, T, w, m.bias, m.cols, head_dim, rope_cos, rope_sin, y, ldy, u0, u1);
    else
      proj_impl(x, T, w, m.bias, m.cols, head_dim, rope_cos, rope_sin, y, ldy, u0, u1);
  });
}

void gather_rows(const Mat& table, const int64_t* ids, int64_t T, float* out) {
  with_weights(table, [&](auto w) {
    const int64_t K = table.cols;
    for (int64_t t = 0; t < T; ++t) {
      if (table.layout == Layout::kPanels) {  // row r is lane r % kPanelRows of panel r / kPanelRows
        const auto* lane = w + ids[t] / kPanelRows * kPanelRows * K + ids[t] % kPanelRows;
        for (int64_t k = 0; k < K; ++k) out[t * K + k] = widen(lane[k * kPanelRows]);
      } else {
        const auto* row = w + ids[t] * K;
        for (int64_t k = 0; k < K; ++k) out[t * K + k] = widen(row[k]);
      }
    }
  });
}

}  // namespace mtad::ops::cpu
