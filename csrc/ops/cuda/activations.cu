// Elementwise feed-forward activations: silu(gate) * up (SwiGLU) and in-place ReLU.
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/cuda/common.cuh"
#include "ops/detail/activations.h"

namespace mtad::cuda {
namespace {

constexpr int kThreads = 256;

template <class T>
__global__ void __launch_bounds__(kThreads)
    silu_mul_kernel(const T* __restrict__ gate, const T* __restrict__ up, T* __restrict__ out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const float g = to_float(gate[i]);
    // Precise expf; for very negative g, expf(-g) = inf and the quotient is -0 (no NaN).
    const float silu = g / (1.f + expf(-g));
    out[i] = from_float<T>(silu * to_float(up[i]));
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads) relu_kernel(T* __restrict__ x, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; i < n; i += int64_t{gridDim.x} * blockDim.x) {
    const float v = to_float(x[i]);
    // Written so NaN passes through, as torch.relu and std::max(x, 0.f) do (fmaxf would
    // turn it into 0).
    if (v < 0.f) x[i] = from_float<T>(0.f);
  }
}

}  // namespace

void silu_mul(DType dt, const void* gate, const void* up, void* out, int64_t n, cudaStream_t stream) {
  if (n < 0) fail("silu_mul", "negative size");
  if (n == 0) return;
  const unsigned blocks = grid_for(n, kThreads);
  dispatch_dtype(dt, "silu_mul", [&](auto tag) {
    using T = typename decltype(tag)::type;
    silu_mul_kernel<T><<<blocks, kThreads, 0, stream>>>(static_cast<const T*>(gate), static_cast<const T*>(up),
                                                         static_cast<T*>(out), n);
  });
  check_launch("silu_mul");
}

void relu(DType dt, void* x, int64_t n, cudaStream_t stream) {
  if (n < 0) fail("relu", "negative size");
  if (n == 0) return;
  const unsigned blocks = grid_for(n, kThreads);
  dispatch_dtype(dt, "relu", [&](auto tag) {
    using T = typename decltype(tag)::type;
    relu_kernel<T><<<blocks, kThreads, 0, stream>>>(static_cast<T*>(x), n);
  });
  check_launch("relu");
}

}  // namespace mtad::cuda
