// Kernels of ops/sampling.h (layout: ops/detail/common.h): the scalar helpers the CPU
// reference and the CUDA kernels share, so both order candidates and draw noise
// identically (beam_step uses them too).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "ops/detail/common.h"
#include "ops/rng.h"  // uniform

namespace mtad::sampling_detail {

// Maps a float to a uint32 whose unsigned order is the float order, so a selection can
// run on integer keys: -0 and +0 map alike, and every NaN maps above +inf (NaN is the
// maximum, as for torch.argmax).
MTAD_HD uint32_t order_key(float x) {
  const float y = x == 0.f ? 0.f : x;
  uint32_t b;
#if defined(__CUDA_ARCH__)
  b = __float_as_uint(y);
#else
  std::memcpy(&b, &y, sizeof b);
#endif
  // Negative: flip every bit (larger magnitude = smaller key); else set the sign bit.
  const uint32_t k = b ^ ((b >> 31) != 0u ? 0xFFFFFFFFu : 0x80000000u);
  return x != x ? 0xFFFFFFFFu : k;  // written without early returns so loops vectorise
}

// Inverse of order_key (NaN for the NaN key).
MTAD_HD float key_value(uint32_t k) {
  if (k == 0xFFFFFFFFu) return NAN;
  const uint32_t b = (k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k;
#if defined(__CUDA_ARCH__)
  return __uint_as_float(b);
#else
  float x;
  std::memcpy(&x, &b, sizeof x);
  return x;
#endif
}

// The total order every selection uses: descending value, ties to the lower index. The
// key is unique per index (n items, index < n < 2^32), so "keep the first k" is "keep
// key >= the k-th largest key".
MTAD_HD uint64_t rank_key(float x, int64_t index, int64_t n) {
  return (static_cast<uint64_t>(order_key(x)) << 32) | static_cast<uint32_t>(n - 1 - index);
}
MTAD_HD int64_t rank_index(uint64_t key, int64_t n) { return n - 1 - static_cast<int64_t>(key & 0xFFFFFFFFu); }

// Gumbel noise -log(-log(u)) for counter c. Computed in double and rounded once, so the
// CPU and the GPU (whose float logs differ in the last bit) get the same float.
MTAD_HD float gumbel(uint64_t seed, uint64_t counter) {
  const double u = rng::uniform(seed, counter);
  return static_cast<float>(-log(-log(u)));
}

}  // namespace mtad::sampling_detail

namespace mtad::ops::cpu {

// Row-wise normalize / sample on contiguous float32 [R, V] (ops/sampling.h). The
// temperature and top_p are floats here, as in the CUDA kernels.
void normalize_f32(const float* logits, float* out, int64_t R, int64_t V, float temperature, int64_t top_k,
                   float top_p);
void sample_f32(const float* logprobs, int64_t* out, int64_t R, int64_t V, uint64_t seed, uint64_t offset);

}  // namespace mtad::ops::cpu

#ifdef MTAD_CUDA_DECLS
namespace mtad::cuda {

// Device pointers, float32; the semantics of ops/sampling.h.
void normalize(const float* logits, float* out, int64_t R, int64_t V, float temperature, int64_t top_k,
               float top_p, cudaStream_t stream);
void sample(const float* logprobs, int64_t* out, int64_t R, int64_t V, uint64_t seed, uint64_t offset,
            cudaStream_t stream);
// `draws` samples from the one row logprobs [V], draw i with u = rng(seed, offset + i),
// exactly as sample() draws row i (beam_step's sampling with replacement).
void sample_repeat(const float* logprobs, int64_t* out, int64_t draws, int64_t V, uint64_t seed, uint64_t offset,
                   cudaStream_t stream);

}  // namespace mtad::cuda
#endif
