// Trie acceptance on the GPU: one thread walks the trie (a chain of a few dozen
// dependent steps, the shared __host__ __device__ code of ops/tree_accept.h), then, for
// sampling, one block draws the next token from the last node's residual.
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/cuda/common.cuh"
#include "ops/rng.h"
#include "ops/tree_accept.h"

namespace mtad::cuda {
namespace {

namespace td = mtad::tree_accept_detail;

constexpr int kThreads = 512;  // a multiple of 32, at most 32 warps (the scan below)
constexpr unsigned long long kNone = ~0ull;

__global__ void tree_accept_kernel(const int64_t* best, const int64_t* parents, const int64_t* tokens, int64_t N,
                                   int64_t V, int64_t* info) {
  td::greedy_walk(best, parents, tokens, N, V, info);
}

// Exclusive prefix sum of x over the block (thread order) and the block's total.
__device__ double block_exclusive_scan(double x, double* smem, double* total) {
  const unsigned lane = threadIdx.x & 31u, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  double incl = x;
#pragma unroll
  for (int off = 1; off < 32; off <<= 1) {
    const double y = __shfl_up_sync(0xffffffffu, incl, off);
    if (lane >= unsigned(off)) incl += y;
  }
  double excl = __shfl_up_sync(0xffffffffu, incl, 1);
  if (lane == 0) excl = 0.0;
  if (lane == 31) smem[warp] = incl;
  __syncthreads();
  if (warp == 0) {
    double s = lane < nwarps ? smem[lane] : 0.0;
#pragma unroll
    for (int off = 1; off < 32; off <<= 1) {
      const double y = __shfl_up_sync(0xffffffffu, s, off);
      if (lane >= unsigned(off)) s += y;
    }
    smem[lane] = s;
  }
  __syncthreads();
  const double base = warp == 0 ? 0.0 : smem[warp - 1];
  *total = smem[nwarps - 1];
  __syncthreads();
  return base + excl;
}

// ops::sample's inverse-CDF draw over weights w(v): the first id whose running (double)
// sum exceeds u (u * total when scale_by_total), else the last id with positive weight;
// -1 when there is none (or the scaled total is not positive). Each thread owns a
// contiguous chunk of ids. Returned to every thread.
template <class Weight>
__device__ int64_t block_draw(int64_t V, float u, bool scale_by_total, Weight weight, double* smem,
                              unsigned long long* first, unsigned long long* last) {
  const int64_t chunk = (V + blockDim.x - 1) / blockDim.x;
  const int64_t b = min(V, static_cast<int64_t>(threadIdx.x) * chunk), e = min(V, b + chunk);
  double local = 0.0;
  for (int64_t v = b; v < e; ++v) {
    const float w = weight(v);
    if (w > 0.f) local += w;
  }
  double total = 0.0;
  double cum = block_exclusive_scan(local, smem, &total);
  if (threadIdx.x == 0) {
    *first = kNone;
    *last = 0;
  }
  __syncthreads();
  if (scale_by_total && !(total > 0.0)) return -1;
  const double target = scale_by_total ? u * total : u;
  int64_t mine = -1;
  for (int64_t v = b; v < e; ++v) {
    const float w = weight(v);
    if (!(w > 0.f)) continue;
    cum += w;
    mine = v;
    if (cum > target) {
      atomicMin(first, static_cast<unsigned long long>(v));
      break;
    }
  }
  if (mine >= 0) atomicMax(last, static_cast<unsigned long long>(mine + 1));
  __syncthreads();
  const int64_t pick = *first != kNone ? static_cast<int64_t>(*first) : static_cast<int64_t>(*last) - 1;
  __syncthreads();
  return pick;
}

__global__ void __launch_bounds__(kThreads)
    tree_sample_kernel(const float* __restrict__ logp, int64_t V, const int64_t* __restrict__ parents,
                       const int64_t* __restrict__ tokens, int64_t N, uint64_t seed, uint64_t offset,
                       int64_t* __restrict__ info) {
  __shared__ double smem[32];
  __shared__ unsigned long long first, last;
  if (threadIdx.x == 0) td::sample_walk(logp, V, parents, tokens, N, seed, offset, info);
  __syncthreads();
  if (info[td::kStatus] != td::kOk) return;  // the same branch on every thread
  const float* p = logp + info[td::kNextRow] * V;
  const int64_t* rejected = info + td::kHeader + N;
  const int64_t nrej = info[td::kRejected];
  const float u = rng::uniform(seed, offset + static_cast<uint64_t>(N));
  int64_t token = block_draw(
      V, u, true, [&](int64_t v) { return td::residual_weight(p, rejected, nrej, v); }, smem, &first, &last);
  if (token < 0) token = block_draw(V, u, false, [&](int64_t v) { return expf(p[v]); }, smem, &first, &last);
  if (threadIdx.x == 0) info[td::kNextToken] = token;
}

}  // namespace

void tree_accept(const int64_t* best, const int64_t* parents, const int64_t* tokens, int64_t N, int64_t V,
                 int64_t* info, cudaStream_t stream) {
  if (N < 0 || V <= 0) fail("tree_accept", "negative size or empty vocabulary");
  tree_accept_kernel<<<1, 1, 0, stream>>>(best, parents, tokens, N, V, info);
  check_launch("tree_accept");
}

void tree_sample(const float* logp, int64_t V, const int64_t* parents, const int64_t* tokens, int64_t N,
                 uint64_t seed, uint64_t offset, int64_t* info, cudaStream_t stream) {
  if (N < 0 || V <= 0) fail("tree_sample", "negative size or empty vocabulary");
  tree_sample_kernel<<<1, kThreads, 0, stream>>>(logp, V, parents, tokens, N, seed, offset, info);
  check_launch("tree_sample");
}

}  // namespace mtad::cuda
