#include "ops/fused.h"

#include <cmath>
#include <type_traits>

#include "ops/cpu/matvec.h"

namespace mtad::ops::cpu {
namespace {

inline float silu_times(float g, float u) { return g / (1.f + std::exp(-g)) * u; }

template <class W>
void gate_up_impl(const float* x, int64_t T, const W* wg, const W* wu, const float* bg, const float* bu, int64_t K,
                  int64_t N, float* out, int64_t n0, int64_t n1) {
  for (int64_t t0 = 0; t0 < T; t0 += kBlockRows) {
    const int64_t t1 = std::min(T, t0 + kBlockRows);
    for (int64_t n = n0; n < n1; ++n) {
      const W* gr = wg + n * K;
      const W* ur = wu + n * K;
      const float gb = bg ? bg[n] : 0.f, ub = bu ? bu[n] : 0.f;
      for (int64_t t = t0; t < t1; ++t) {
        const float g = dot_row(gr, x + t * K, K) + gb;
        const float u = dot_row(ur, x + t * K, K) + ub;
        out[t * N + n] = silu_times(g, u);
      }
    }
  }
}

template <class W>
void proj_impl(const float* x, int64_t T, const W* w, const float* b, int64_t K, int64_t D, const float* cs,
               const float* sn, float* y, int64_t ldy, int64_t u0, int64_t u1) {
  const int64_t half = D / 2;
  for (int64_t t0 = 0; t0 < T; t0 += kBlockRows) {
    const int64_t t1 = std::min(T, t0 + kBlockRows);
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t i = u % half, r0 = (u / half) * D + i, r1 = r0 + half;
      const float b0 = b ? b[r0] : 0.f, b1 = b ? b[r1] : 0.f;
      for (int64_t t = t0; t < t1; ++t) {
        const float a = dot_row(w + r0 * K, x + t * K, K) + b0;
        const float c = dot_row(w + r1 * K, x + t * K, K) + b1;
        const float co = cs[t * half + i], si = sn[t * half + i];
        // The same rotation as ops/cpu/rope.cpp (rotate-half pairing).
        y[t * ldy + r0] = a * co - c * si;
        y[t * ldy + r1] = c * co + a * si;
      }
    }
  }
}

}  // namespace

void gate_up_rows(const float* x, int64_t T, const Mat& gate, const Mat& up, float* out, int64_t n0, int64_t n1) {
  with_weights(gate, [&](auto wg) {
    using W = std::remove_cv_t<std::remove_pointer_t<decltype(wg)>>;
    gate_up_impl(x, T, wg, static_cast<const W*>(up.w), gate.bias, up.bias, gate.cols, gate.rows, out, n0, n1);
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
  with_weights(m, [&](auto w) { proj_impl(x, T, w, m.bias, m.cols, head_dim, rope_cos, rope_sin, y, ldy, u0, u1); });
}

void gather_rows(const Mat& table, const int64_t* ids, int64_t T, float* out) {
  with_weights(table, [&](auto w) {
    const int64_t K = table.cols;
    for (int64_t t = 0; t < T; ++t) {
      const auto* row = w + ids[t] * K;
      for (int64_t k = 0; k < K; ++k) out[t * K + k] = widen(row[k]);
    }
  });
}

}  // namespace mtad::ops::cpu
