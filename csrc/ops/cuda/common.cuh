// Device helpers shared by the CUDA kernels: float conversion of the storage types,
// block reductions and scans, the block-wide inverse-CDF draw, dtype dispatch and
// launch-error checks. CUDA headers and ops/detail/ only (no ATen), so the .cu files
// compile with nvcc alone.
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

#include "ops/detail/common.h"  // DType

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

// ---- reductions, scans, draws -----------------------------------------------------------

struct MaxOp {
  template <class T>
  __device__ T operator()(T a, T b) const { return a > b ? a : b; }
};
struct MinOp {
  template <class T>
  __device__ T operator()(T a, T b) const { return a < b ? a : b; }
};
struct SumOp {
  template <class T>
  __device__ T operator()(T a, T b) const { return a + b; }
};
// fmaxf: a NaN operand loses (MaxOp would keep or drop it by position).
struct FMaxOp {
  __device__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

template <class T, class Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

__device__ __forceinline__ float warp_reduce_sum(float v) { return warp_reduce(v, SumOp{}); }
__device__ __forceinline__ float warp_reduce_max(float v) { return warp_reduce(v, FMaxOp{}); }

// Reduction over the block, returned to every thread; `identity` fills the unused lanes.
// blockDim.x must be a multiple of 32 (the shuffles use a full mask) and at most 1024;
// smem holds at least 32 values. Every thread of the block must call it (it synchronises).
template <class T, class Op>
__device__ T block_reduce(T v, T identity, Op op, T* smem) {
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  v = warp_reduce(v, op);
  if (lane == 0) smem[warp] = v;
  __syncthreads();
  if (warp == 0) {
    const T r = warp_reduce(lane < nwarps ? smem[lane] : identity, op);
    if (lane == 0) smem[0] = r;
  }
  __syncthreads();
  const T r = smem[0];
  __syncthreads();  // smem may be reused by the next call right away
  return r;
}

__device__ __forceinline__ float block_reduce_sum(float v, float* smem) { return block_reduce(v, 0.f, SumOp{}, smem); }
__device__ __forceinline__ float block_reduce_max(float v, float* smem) {
  return block_reduce(v, -INFINITY, FMaxOp{}, smem);
}

// Exclusive prefix sum of x over the block in thread order; *total gets the block's sum.
// The same conditions as block_reduce (smem: 32 doubles).
__device__ __forceinline__ double block_exclusive_scan(double x, double* smem, double* total) {
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  double incl = x;
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
    const double y = __shfl_up_sync(0xffffffffu, incl, off);
    if (lane >= unsigned(off)) incl += y;
  }
  const double up = __shfl_up_sync(0xffffffffu, incl, 1);
  const double excl = lane == 0 ? 0.0 : up;
  if (lane == 31) smem[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    double s = lane < nwarps ? smem[lane] : 0.0;
#pragma unroll
    for (int off = 1; off < 32; off <<= 1) {
      const double y = __shfl_up_sync(0xffffffffu, s, off);
      if (lane >= unsigned(off)) s += y;
    }
    smem[lane] = s;  // inclusive over the warps
  }
  __syncthreads();
  const double base = warp == 0 ? 0.0 : smem[warp - 1];
  *total = smem[nwarps - 1];
  __syncthreads();  // smem is reused by the next call
  return base + excl;
}

// Shared memory of block_draw.
struct DrawSmem {
  double scan[32];
  unsigned long long first, last;
};

// ops::sample's inverse-CDF draw over weights w(v), v in [0, V), by one block: the first
// id whose running (double) sum exceeds u (u * total when scale_by_total); if rounding
// leaves none, the last id with positive weight; -1 if all weights are 0 (or the scaled
// total is not positive). Each thread owns a contiguous chunk of ids, so the running sum
// is its chunk's exclusive prefix plus its own sum. Returned to every thread, which must
// all call it. The one-thread twin is cpu::draw_weighted (ops/cpu/draw.h).
template <class Weight>
__device__ int64_t block_draw(int64_t V, float u, bool scale_by_total, Weight weight, DrawSmem& sm) {
  constexpr unsigned long long kNone = ~0ull;
  const int64_t chunk = (V + blockDim.x - 1) / blockDim.x;
  const int64_t b = min(V, static_cast<int64_t>(threadIdx.x) * chunk), e = min(V, b + chunk);
  double local = 0.0;
  for (int64_t v = b; v < e; ++v) {
    const float w = weight(v);
    if (w > 0.f) local += w;
  }
  double total = 0.0;
  double cum = block_exclusive_scan(local, sm.scan, &total);
  if (threadIdx.x == 0) {
    sm.first = kNone;
    sm.last = 0;  // last id + 1, 0 for none
  }
  __syncthreads();
  if (scale_by_total && !(total > 0.0)) return -1;  // the same branch on every thread
  const double target = scale_by_total ? u * total : u;
  int64_t mine = -1;
  for (int64_t v = b; v < e; ++v) {
    const float w = weight(v);
    if (!(w > 0.f)) continue;
    cum += w;
    mine = v;
    if (cum > target) {
      atomicMin(&sm.first, static_cast<unsigned long long>(v));
      break;
    }
  }
  if (mine >= 0) atomicMax(&sm.last, static_cast<unsigned long long>(mine + 1));
  __syncthreads();
  const int64_t pick = sm.first != kNone ? static_cast<int64_t>(sm.first) : static_cast<int64_t>(sm.last) - 1;
  __syncthreads();  // first / last are reset by the next call
  return pick;
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
