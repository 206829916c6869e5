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

template <class W>
void linear_impl(const float* x, const W* w, const float* b, float* y, int64_t T, int64_t K, int64_t N) {
  // Rows in order: each thread reads one sequential stream of weights (what the hardware
  // prefetcher follows best), and a row stays in L1 while all T activation rows use it.
  at::parallel_for(0, N, std::max<int64_t>(16, grain_for(K * T)), [&](int64_t begin, int64_t end) {
    for (int64_t n = begin; n < end; ++n) {
      const W* wr = w + n * K;
      const float bias = b ? b[n] : 0.f;
      for (int64_t t = 0; t < T; ++t) y[t * N + n] = dot_row(wr, x + t * K, K) + bias;
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
