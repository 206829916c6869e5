// AVX2 helpers shared by the CPU kernels (with a scalar fallback for other targets).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define MTAD_AVX2 1
#if defined(__AVX512F__)
// The panel kernels use 16-lane registers (twice the FMA work per instruction, and 32
// registers for larger tiles); everything else stays on the AVX2 code.
#define MTAD_AVX512 1
#endif
#endif

namespace mtad::ops::cpu {

// Least work (multiply-adds) worth a chunk of its own: below it the fork/join of a
// parallel region costs more than it saves, and on a busy machine a region whose other
// thread is descheduled stalls for a whole time slice.
constexpr int64_t kMinParallelWork = 1 << 16;
// The value in force: kMinParallelWork unless a test lowered it (0 splits every loop, so
// that tiny models exercise the multi-thread paths; mtad_ext.ops.set_min_parallel_work).
inline std::atomic<int64_t>& min_parallel_work() {
  static std::atomic<int64_t> value{kMinParallelWork};
  return value;
}

// Grain (iterations per chunk) for a parallel loop whose iterations cost `work_per_item`.
inline int64_t grain_for(int64_t work_per_item) {
  const int64_t min_work = min_parallel_work().load(std::memory_order_relaxed);
  return work_per_item <= 0 ? 1 : std::max<int64_t>(1, min_work / work_per_item);
}

// The panel kernels' vector: one panel column of float32 lanes (ops/cpu/panels.h).
#if defined(MTAD_AVX512)
using VecF = __m512;
constexpr int kVecLanes = 16;
inline VecF vzero() { return _mm512_setzero_ps(); }
inline VecF vbroadcast(const float* p) { return _mm512_set1_ps(*p); }
inline VecF vfmadd(VecF a, VecF b, VecF c) { return _mm512_fmadd_ps(a, b, c); }
inline void vstore(float* p, VecF v) { _mm512_storeu_ps(p, v); }
#elif defined(MTAD_AVX2)
using VecF = __m256;
constexpr int kVecLanes = 8;
inline VecF vzero() { return _mm256_setzero_ps(); }
inline VecF vbroadcast(const float* p) { return _mm256_broadcast_ss(p); }
inline VecF vfmadd(VecF a, VecF b, VecF c) { return _mm256_fmadd_ps(a, b, c); }
inline void vstore(float* p, VecF v) { _mm256_storeu_ps(p, v); }
#else
constexpr int kVecLanes = 8;
#endif

#ifdef MTAD_AVX2
inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_hadd_ps(lo, lo);
  lo = _mm_hadd_ps(lo, lo);
  return _mm_cvtss_f32(lo);
}
#endif

inline float dot(const float* a, const float* b, int64_t n) {
  int64_t i = 0;
  float s = 0.f;
#ifdef MTAD_AVX2
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  s = hsum(_mm256_add_ps(acc0, acc1));
#endif
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

#ifdef MTAD_AVX2
// exp of 8 floats: x = n ln2 + r with |r| <= ln2 / 2, exp(r) by a degree-6 polynomial
// (relative error ~2e-7, as std::exp's float result), 2^n through the exponent bits.
// Inputs below -87.3 give 0 (softmax weights that small do not count), above 88.37 the
// value at 88.37; NaN stays NaN (max/min return their second operand when either is NaN).
inline __m256 exp8(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-87.33654f), hi = _mm256_set1_ps(88.3762626f);
  const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_min_ps(hi, _mm256_max_ps(lo, x));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  // r = x - n ln2, ln2 in two parts so that the product is exact.
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_andnot_ps(under, _mm256_mul_ps(y, _mm256_castsi256_ps(e)));
}
#endif

// Dot products of q with four rows, each one FMA chain over n in order and reduced the same
// way, so a row's value does not depend on which rows share its call.
inline void dot4(const float* q, const float* const r[4], int64_t n, float out[4]) {
  int64_t i = 0;
#ifdef MTAD_AVX2
  __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(q + i);
    a0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(r[0] + i), a0);
    a1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(r[1] + i), a1);
    a2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(r[2] + i), a2);
    a3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(r[3] + i), a3);
  }
  const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
  _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1)));
#else
  for (int j = 0; j < 4; ++j) out[j] = 0.f;
#endif
  for (int j = 0; j < 4; ++j)
    for (int64_t d = i; d < n; ++d) out[j] += q[d] * r[j][d];
}

// y += a * x
inline void axpy(float a, const float* x, float* y, int64_t n) {
  int64_t i = 0;
#ifdef MTAD_AVX2
  const __m256 va = _mm256_set1_ps(a);
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
#endif
  for (; i < n; ++i) y[i] += a * x[i];
}

}  // namespace mtad::ops::cpu
