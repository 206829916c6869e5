// Device helpers shared by the CUDA kernels: float conversion of the storage types,
// warp/block reductions, dtype dispatch and launch-error checks. CUDA headers only, so
// the .cu files compile with nvcc alone.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "ops/cuda/launch.h"

namespace mtad::cuda {

// ---- storage type <-> float -------------------------------------------------------------

__device__ __forceinline__ float to_float(float x) { return x; }
__device__ __forceinline__ float to_float(__half x) { return __half2float(x); }
__device__ __forceinline__ float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

// Round-to-nearest-even, as PyTorch's casts do.
template <class T>
__device__ __forceinline__ T from_float(float x) {
  if constexpr (std::is_same_v<T, float>) {
    return x;
  } else if constexpr (std::is_same_v<T, __half>) {
    return __float2half_rn(x);
  } else {
    static_assert(std::is_same_v<T, __nv_bfloat16>, "unsupported storage type");
    return __float2bfloat16_rn(x);
  }
}

// Rounds a float to T's precision and back (the value a T tensor would hold).
template <class T>
__device__ __forceinline__ float round_to(float x) {
  return to_float(from_float<T>(x));
}

// ---- reductions --------------------------------------------------------------------------

__device__ __forceinline__ float warp_reduce_sum(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

__device__ __forceinline__ float warp_reduce_max(float v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

// Sum over the block, returned to every thread. blockDim.x must be a multiple of 32 (the
// shuffles use a full mask) and at most 1024; smem holds at least 32 floats. Every thread
// of the block must call it (it synchronises).
__device__ __forceinline__ float block_reduce_sum(float v, float* smem) {
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  const unsigned nwarps = blockDim.x >> 5;
  v = warp_reduce_sum(v);
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float r = warp_reduce_sum(lane < nwarps ? smem[lane] : 0.f);
    if (lane == 0) smem[0] = r;
  }
  __syncthreads();
  const float r = smem[0];
  __syncthreads();  // smem may be reused by the next call right away
  return r;
}

__device__ __forceinline__ float block_reduce_max(float v, float* smem) {
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5;
  const unsigned nwarps = blockDim.x >> 5;
  v = warp_reduce_max(v);
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  if (warp == 0) {
    float r = warp_reduce_max(lane < nwarps ? smem[lane] : -INFINITY);
    if (lane == 0) smem[0] = r;
  }
  __syncthreads();
  const float r = smem[0];
  __syncthreads();
  return r;
}

// ---- host side ---------------------------------------------------------------------------

// Kernels use grid-stride loops, so the grid can be capped well below gridDim.x's limit
// (2^31 - 1) and sizes past 2^31 elements still work.
inline constexpr int64_t kMaxBlocks = int64_t{1} << 20;

inline unsigned grid_for(int64_t work_items, int64_t per_block) {
  const int64_t blocks = (work_items + per_block - 1) / per_block;
  return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, kMaxBlocks));
}

[[noreturn]] inline void fail(const char* op, const std::string& what) {
  throw std::runtime_error(std::string("mtad::cuda::") + op + ": " + what);
}

// Call right after a launch: reports bad launch configurations (and any sticky error
// from earlier asynchronous work) as an exception naming the op.
inline void check_launch(const char* op) {
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) fail(op, std::string("kernel launch failed: ") + cudaGetErrorString(err));
}

template <class T>
struct TypeTag {
  using type = T;
};

// Calls f(TypeTag<storage type>{}) for dt.
template <class F>
void dispatch_dtype(DType dt, const char* op, F&& f) {
  switch (dt) {
    case DType::F32: f(TypeTag<float>{}); return;
    case DType::F16: f(TypeTag<__half>{}); return;
    case DType::BF16: f(TypeTag<__nv_bfloat16>{}); return;
  }
  fail(op, "unsupported dtype");
}

}  // namespace mtad::cuda
