#include "ops/linear.h"

#include <ATen/Parallel.h>

#include "ops/cpu/simd.h"

namespace mtad::ops::cpu {
namespace {

// Four weight rows against one activation row: the rows stay in L1 across all T rows
// of x, so each weight byte comes from memory once per call.
inline void dot4(const float* w, int64_t K, const float* x, float out[4]) {
  int64_t k = 0;
#ifdef MTAD_AVX2
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
  for (; k + 8 <= K; k += 8) {
    const __m256 xv = _mm256_loadu_ps(x + k);
    a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k), xv, a0);
    a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + K + k), xv, a1);
    a2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + 2 * K + k), xv, a2);
    a3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + 3 * K + k), xv, a3);
  }
  out[0] = hsum(a0);
  out[1] = hsum(a1);
  out[2] = hsum(a2);
  out[3] = hsum(a3);
#else
  out[0] = out[1] = out[2] = out[3] = 0.f;
#endif
  for (; k < K; ++k) {
    for (int r = 0; r < 4; ++r) out[r] += w[r * K + k] * x[k];
  }
}

}  // namespace

void linear_f32(const float* x, const float* w, const float* b, float* y, int64_t T, int64_t K, int64_t N) {
  // Split the output features across threads; a chunk of at least 16 rows keeps the
  // scheduling cost small next to the row streaming.
  at::parallel_for(0, (N + 3) / 4, 4, [&](int64_t begin, int64_t end) {
    for (int64_t blk = begin; blk < end; ++blk) {
      const int64_t n = blk * 4;
      if (n + 4 <= N) {
        const float* wr = w + n * K;
        for (int64_t t = 0; t < T; ++t) {
          float acc[4];
          dot4(wr, K, x + t * K, acc);
          float* yr = y + t * N + n;
          for (int r = 0; r < 4; ++r) yr[r] = acc[r] + (b ? b[n + r] : 0.f);
        }
      } else {
        for (int64_t nn = n; nn < N; ++nn)
          for (int64_t t = 0; t < T; ++t) y[t * N + nn] = dot(w + nn * K, x + t * K, K) + (b ? b[nn] : 0.f);
      }
    }
  });
}

}  // namespace mtad::ops::cpu
