// The inner loop every CPU matrix kernel shares: one weight row (float32, float16 or
// bfloat16, widened to float32 in registers) against one float32 activation row.
#pragma once

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

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
inline float widen(float v) { return v; }
inline float widen(c10::Half v) { return static_cast<float>(v); }
inline float widen(c10::BFloat16 v) { return static_cast<float>(v); }

// One weight row against one activation row, four independent accumulators.
template <class W>
inline float dot_row(const W* w, const float* x, int64_t K) {
  int64_t k = 0;
  float s = 0.f;
#ifdef MTAD_AVX2
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
  for (; k + 32 <= K; k += 32) {
    a0 = _mm256_fmadd_ps(load8(w + k), _mm256_loadu_ps(x + k), a0);
    a1 = _mm256_fmadd_ps(load8(w + k + 8), _mm256_loadu_ps(x + k + 8), a1);
    a2 = _mm256_fmadd_ps(load8(w + k + 16), _mm256_loadu_ps(x + k + 16), a2);
    a3 = _mm256_fmadd_ps(load8(w + k + 24), _mm256_loadu_ps(x + k + 24), a3);
  }
  for (; k + 8 <= K; k += 8) a0 = _mm256_fmadd_ps(load8(w + k), _mm256_loadu_ps(x + k), a0);
  s = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
#endif
  for (; k < K; ++k) s += widen(w[k]) * x[k];
  return s;
}

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
// (from cache for all but the largest matrices). On this kind of CPU the streaming
// kernel beats the BLAS GEMM at every T measured: a T = 32 tree verification costs
// 1.02x a single-token step with it, and the GEMM path cost 39x.
constexpr int64_t kBlockRows = 32;

}  // namespace mtad::ops::cpu
