// RMSNorm and LayerNorm over the last dimension: one block per row (grid-stride over rows),
// statistics accumulated in float32.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "ops/cuda/common.cuh"
#include "ops/detail/norms.h"

namespace mtad::cuda {
namespace {

constexpr int kMaxThreads = 512;

// Enough threads to cover a row once (up to kMaxThreads), a multiple of the warp size as
// block_reduce_sum needs.
int threads_for(int64_t dim) {
  const int64_t t = (dim + 31) / 32 * 32;
  return static_cast<int>(std::clamp<int64_t>(t, 32, kMaxThreads));
}

template <class T>
__global__ void __launch_bounds__(kMaxThreads)
    rms_norm_kernel(const T* __restrict__ x, const T* __restrict__ w, T* __restrict__ y, int64_t rows,
                    int64_t dim, float eps) {
  __shared__ float red[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * dim;
    T* yr = y + r * dim;
    float ss = 0.f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
      const float v = to_float(xr[i]);
      ss += v * v;
    }
    ss = block_reduce_sum(ss, red);
    // Correctly rounded sqrt and division (not rsqrtf) to stay close to the CPU reference.
    const float inv = 1.f / sqrtf(ss / static_cast<float>(dim) + eps);
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
      // Hugging Face Llama: weight * (x * inv_rms).to(dtype), the product rounded again.
      const float normed = round_to<T>(to_float(xr[i]) * inv);
      yr[i] = from_float<T>(to_float(w[i]) * normed);
    }
  }
}

template <class T>
__global__ void __launch_bounds__(kMaxThreads)
    layer_norm_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                      T* __restrict__ y, int64_t rows, int64_t dim, float eps) {
  __shared__ float red[32];
  const float inv_dim = 1.f / static_cast<float>(dim);
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * dim;
    T* yr = y + r * dim;
    float s = 0.f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) s += to_float(xr[i]);
    const float mean = block_reduce_sum(s, red) * inv_dim;
    // Two passes (sum of squared deviations) rather than E[x^2] - mean^2, which cancels
    // badly when |mean| >> std. The row is re-read from L1/L2.
    float sq = 0.f;
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
      const float d = to_float(xr[i]) - mean;
      sq += d * d;
    }
    const float var = block_reduce_sum(sq, red) * inv_dim;  // biased, as torch
    const float rstd = 1.f / sqrtf(var + eps);
    for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
      float v = (to_float(xr[i]) - mean) * rstd;
      if (w != nullptr) v *= to_float(w[i]);
      if (b != nullptr) v += to_float(b[i]);
      yr[i] = from_float<T>(v);
    }
  }
}

void check_sizes(const char* op, int64_t rows, int64_t dim) {
  if (rows < 0 || dim < 0) fail(op, "negative size");
}

}  // namespace

void rms_norm(DType dt, const void* x, const void* w, void* y, int64_t rows, int64_t dim, float eps,
              cudaStream_t stream) {
  check_sizes("rms_norm", rows, dim);
  if (rows == 0 || dim == 0) return;  // nothing to write
  const int threads = threads_for(dim);
  const unsigned blocks = grid_for(rows, 1);
  dispatch_dtype(dt, "rms_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    rms_norm_kernel<T><<<blocks, threads, 0, stream>>>(static_cast<const T*>(x), static_cast<const T*>(w),
                                                       static_cast<T*>(y), rows, dim, eps);
  });
  check_launch("rms_norm");
}

void layer_norm(DType dt, const void* x, const void* w, const void* b, void* y, int64_t rows, int64_t dim,
                float eps, cudaStream_t stream) {
  check_sizes("layer_norm", rows, dim);
  if (rows == 0 || dim == 0) return;
  const int threads = threads_for(dim);
  const unsigned blocks = grid_for(rows, 1);
  dispatch_dtype(dt, "layer_norm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    layer_norm_kernel<T><<<blocks, threads, 0, stream>>>(static_cast<const T*>(x), static_cast<const T*>(w),
                                                         static_cast<const T*>(b), static_cast<T*>(y), rows, dim,
                                                         eps);
  });
  check_launch("layer_norm");
}

}  // namespace mtad::cuda
