// Rotary position embedding (rotate-half pairing), in place on x [T, heads, D].
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/cuda/common.cuh"
#include "ops/detail/rope.h"

namespace mtad::cuda {
namespace {

constexpr int kThreads = 256;
// Each thread rotates pair i of up to this many heads of one token, so the (precise, not
// cheap) sincosf is shared across heads while keeping enough threads for decode (T = 1).
constexpr int kHeadsPerThread = 4;

template <class T>
__global__ void __launch_bounds__(kThreads)
    rope_kernel(T* __restrict__ x, const int64_t* __restrict__ positions, const float* __restrict__ inv_freq,
                int64_t tokens, int64_t heads, int64_t half, int64_t head_groups) {
  const int64_t n = tokens * head_groups * half;
  const int64_t D = 2 * half;
  for (int64_t idx = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; idx < n;
       idx += int64_t{gridDim.x} * blockDim.x) {
    // i fastest, so a warp touches consecutive elements of one head row.
    const int64_t i = idx % half;
    const int64_t rest = idx / half;
    const int64_t hg = rest % head_groups;
    const int64_t t = rest / head_groups;
    const float angle = static_cast<float>(positions[t]) * inv_freq[i];
    float s, c;
    sincosf(angle, &s, &c);  // precise (no fast-math): same accuracy as cosf/sinf
    const int64_t h_stop = (hg + 1) * kHeadsPerThread;
    const int64_t h_end = h_stop < heads ? h_stop : heads;
    for (int64_t h = hg * kHeadsPerThread; h < h_end; ++h) {
      T* row = x + (t * heads + h) * D;
      const float x1 = to_float(row[i]);
      const float x2 = to_float(row[i + half]);
      // _rn intrinsics keep each product rounded separately (no FMA contraction), matching
      // the plain float expression of the reference.
      row[i] = from_float<T>(__fsub_rn(__fmul_rn(x1, c), __fmul_rn(x2, s)));
      row[i + half] = from_float<T>(__fadd_rn(__fmul_rn(x2, c), __fmul_rn(x1, s)));
    }
  }
}

}  // namespace

void rope(DType dt, void* x, const int64_t* positions, const float* inv_freq, int64_t T, int64_t heads,
          int64_t D, cudaStream_t stream) {
  if (T < 0 || heads < 0 || D < 0) fail("rope", "negative size");
  if (D % 2 != 0) fail("rope", "head dim must be even");
  if (T == 0 || heads == 0 || D == 0) return;
  const int64_t half = D / 2;
  const int64_t head_groups = (heads + kHeadsPerThread - 1) / kHeadsPerThread;
  const unsigned blocks = grid_for(T * head_groups * half, kThreads);
  dispatch_dtype(dt, "rope", [&](auto tag) {
    using T_ = typename decltype(tag)::type;
    rope_kernel<T_><<<blocks, kThreads, 0, stream>>>(static_cast<T_*>(x), positions, inv_freq, T, heads, half,
                                                      head_groups);
  });
  check_launch("rope");
}

}  // namespace mtad::cuda
