#include "ops/linear.h"

#include <ATen/Parallel.h>

#include "ops/cpu/simd.h"

namespace mtad::ops::cpu {
namespace {

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

// Four weight rows against one activation row: the rows stay in L1 across all T rows
// of x, so each weight byte comes from memory once per call.
template <class W>
inline void dot4(const W* w, int64_t K, const float* x, float out[4]) {
  int64_t k = 0;
#ifdef MTAD_AVX2
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
  for (; k + 8 <= K; k += 8) {
    const __m256 xv = _mm256_loadu_ps(x + k);
    a0 = _mm256_fmadd_ps(load8(w + k), xv, a0);
    a1 = _mm256_fmadd_ps(load8(w + K + k), xv, a1);
    a2 = _mm256_fmadd_ps(load8(w + 2 * K + k), xv, a2);
    a3 = _mm256_fmadd_ps(load8(w + 3 * K + k), xv, a3);
  }
  out[0] = hsum(a0);
  out[1] = hsum(a1);
  out[2] = hsum(a2);
  out[3] = hsum(a3);
#else
  out[0] = out[1] = out[2] = out[3] = 0.f;
#endif
  for (; k < K; ++k) {
    for (int r = 0; r < 4; ++r) out[r] += widen(w[r * K + k]) * x[k];
  }
}

template <class W>
inline float dot1(const W* w, const float* x, int64_t K) {
  float s = 0.f;
  for (int64_t k = 0; k < K; ++k) s += widen(w[k]) * x[k];
  return s;
}

template <class W>
void linear_impl(const float* x, const W* w, const float* b, float* y, int64_t T, int64_t K, int64_t N) {
  // Split the output features across threads in blocks of four rows.
  at::parallel_for(0, (N + 3) / 4, 4, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t n = blk * 4;
      if (n + 4 <= N) {
        const W* wr = w + n * K;
        for (int64_t t = 0; t < T; ++t) {
          float acc[4];
          dot4(wr, K, x + t * K, acc);
          float* yr = y + t * N + n;
          for (int r = 0; r < 4; ++r) yr[r] = acc[r] + (b ? b[n + r] : 0.f);
        }
      } else {
        for (int64_t nn = n; nn < N; ++nn)
          for (int64_t t = 0; t < T; ++t) y[t * N + nn] = dot1(w + nn * K, x + t * K, K) + (b ? b[nn] : 0.f);
      }
    }
  });
}

}  // namespace

void linear_f32(const float* x, const float* w, const float* b, float* y, int64_t T, int64_t K, int64_t N) {
  linear_impl(x, w, b, y, T, K, N);
}
void linear_f16(const float* x, const c10::Half* w, const float* b, float* y, int64_t T, int64_t K, int64_t N) {
  linear_impl(x, w, b, y, T, K, N);
}
void linear_bf16(const float* x, const c10::BFloat16* w, const float* b, float* y, int64_t T, int64_t K,
                 int64_t N) {
  linear_impl(x, w, b, y, T, K, N);
}

}  // namespace mtad::ops::cpu
