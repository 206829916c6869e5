// verify's tree pass and the fused speculative-sampling acceptance on the GPU. The
// normalisation and the bonus draw of verify run as ops::normalize / ops::sample from
// ops/verify.cpp; here only what has no ATen equivalent.
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/cuda/common.cuh"
#include "ops/cuda/launch_verify.h"
#include "ops/rng.h"

namespace mtad::cuda {
namespace {

namespace vd = mtad::verify_detail;

__global__ void verify_tree_kernel(const float* logp, int64_t V, const int64_t* parents, const int64_t* tokens,
                                   int64_t N, const float* best_lq, int64_t G, float log_tau, float* node_lp,
                                   int64_t* info) {
  vd::verify_tree(logp, V, parents, tokens, N, best_lq, G, log_tau, node_lp, info);
}

constexpr int kThreads = 512;  // a multiple of 32 and at most 32 warps (the scans below)
constexpr unsigned long long kNone = ~0ull;

// Exclusive prefix sum of x over the block (thread order), and the block's total.
// Every thread must call it; smem holds 32 values.
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
    smem[lane] = s;  // inclusive over warps
  }
  __syncthreads();
  const double base = warp == 0 ? 0.0 : smem[warp - 1];
  *total = smem[nwarps - 1];
  __syncthreads();  // smem is reused by the next call
  return base + excl;
}

// The inverse-CDF draw of ops::sample over weights w(v), v in [0, V): the first id whose
// running (double) sum exceeds u (u * total when scale_by_total); if rounding leaves none, the
// last id with positive weight; -1 if all weights are 0 (or the scaled total is not
// positive). Each thread owns a contiguous chunk of ids, so the running sum is its
// chunk's exclusive prefix plus its own sum. Returned to every thread.
template <class Weight>
__device__ int64_t block_draw(int64_t V, float u, bool scale_by_total, Weight weight, double* smem,
                              unsigned long long* first, unsigned long long* last) {
  const int64_t chunk = (V + blockDim.x - 1) / blockDim.x;
  const int64_t b = min(V, threadIdx.x * chunk), e = min(V, b + chunk);
  double local = 0.0;
  for (int64_t v = b; v < e; ++v) {
    const float w = weight(v);
    if (w > 0.f) local += w;
  }
  double total = 0.0;
  double cum = block_exclusive_scan(local, smem, &total);
  if (threadIdx.x == 0) {
    *first = kNone;
    *last = 0;  // last id + 1, 0 for none
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
      atomicMin(first, static_cast<unsigned long long>(v));
      break;
    }
  }
  if (mine >= 0) atomicMax(last, static_cast<unsigned long long>(mine + 1));
  __syncthreads();
  const int64_t pick = *first != kNone ? static_cast<int64_t>(*first) : static_cast<int64_t>(*last) - 1;
  __syncthreads();  // first / last are reset by the next call
  return pick;
}

// One block: thread 0 runs the (sequential) acceptance chain, then the block draws the
// next token from the residual or from p.
__global__ void __launch_bounds__(kThreads)
    sps_accept_kernel(const float* __restrict__ tlp, const float* __restrict__ dlp,
                      const int64_t* __restrict__ tokens, int64_t G, int64_t V, uint64_t seed, uint64_t offset,
                      int64_t* __restrict__ out) {
  __shared__ double smem[32];
  __shared__ unsigned long long first, last;
  __shared__ int64_t s_n, s_bad;
  if (threadIdx.x == 0) {
    int64_t bad = -1, n = G;
    for (int64_t i = 0; i < G; ++i) {
      if (tokens[i] < 0 || tokens[i] >= V) {
        bad = i;
        break;
      }
    }
    for (int64_t i = 0; bad < 0 && i < G; ++i) {
      const int64_t x = tokens[i];
      const float u = rng::uniform(seed, offset + uint64_t(i));
      if (!(u < vd::sps_accept_prob(tlp[i * V + x], dlp[i * V + x]))) {
        n = i;
        break;
      }
    }
    s_n = n;
    s_bad = bad;
  }
  __syncthreads();
  const int64_t n = s_n;
  if (s_bad >= 0) {
    if (threadIdx.x == 0) {
      out[0] = out[1] = 0;
      out[2] = s_bad;
    }
    return;
  }
  const float u = rng::uniform(seed, offset + uint64_t(G));
  const float* p = tlp + n * V;
  int64_t token = -1;
  if (n < G) {
    const float* q = dlp + n * V;
    token = block_draw(V, u, true, [&](int64_t v) { return vd::sps_residual(p[v], q[v]); }, smem, &first, &last);
  }
  if (token < 0) token = block_draw(V, u, false, [&](int64_t v) { return expf(p[v]); }, smem, &first, &last);
  if (threadIdx.x == 0) {
    out[0] = n;
    out[1] = token;
    out[2] = -1;
  }
}

}  // namespace

void verify_tree(const float* logp, int64_t V, const int64_t* parents, const int64_t* tokens, int64_t N,
                 const float* best_lq, int64_t G, float log_tau, float* node_lp, int64_t* info, cudaStream_t stream) {
  if (V < 0 || N < 0 || G < 0) fail("verify_tree", "negative size");
  verify_tree_kernel<<<1, 1, 0, stream>>>(logp, V, parents, tokens, N, best_lq, G, log_tau, node_lp, info);
  check_launch("verify_tree");
}

void sps_accept(const float* tlp, const float* dlp, const int64_t* tokens, int64_t G, int64_t V, uint64_t seed,
                uint64_t offset, int64_t* out, cudaStream_t stream) {
  if (V <= 0 || G < 0) fail("sps_accept", "empty vocabulary or negative size");
  sps_accept_kernel<<<1, kThreads, 0, stream>>>(tlp, dlp, tokens, G, V, seed, offset, out);
  check_launch("sps_accept");
}

}  // namespace mtad::cuda
