// verify's tree pass and the fused speculative-sampling acceptance on the GPU. The
// normalisation and the bonus draw of verify run as ops::normalize / ops::sample from
// ops/verify.cpp; here only what has no ATen equivalent.
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/cuda/common.cuh"
#include "ops/detail/verify.h"
#include "ops/rng.h"

namespace mtad::cuda {
namespace {

namespace vd = mtad::verify_detail;

__global__ void verify_tree_kernel(const float* logp, int64_t V, const int64_t* parents, const int64_t* tokens,
                                   int64_t N, const float* best_lq, int64_t G, float log_tau, float* node_lp,
                                   int64_t* info) {
  vd::verify_tree(logp, V, parents, tokens, N, best_lq, G, log_tau, node_lp, info);
}

constexpr int kThreads = 512;  // a multiple of 32 and at most 32 warps (block_draw's scan)

// One block: thread 0 runs the (sequential) acceptance chain, then the block draws the
// next token from the residual or from p.
__global__ void __launch_bounds__(kThreads)
    sps_accept_kernel(const float* __restrict__ tlp, const float* __restrict__ dlp,
                      const int64_t* __restrict__ tokens, int64_t G, int64_t V, uint64_t seed, uint64_t offset,
                      int64_t* __restrict__ out) {
  __shared__ DrawSmem sm;
  __shared__ int64_t chain[3];
  if (threadIdx.x == 0) vd::sps_chain(tlp, dlp, tokens, G, V, seed, offset, chain);
  __syncthreads();
  if (chain[2] >= 0) {  // a token outside the vocabulary: the same branch on every thread
    if (threadIdx.x == 0) {
      for (int i = 0; i < 3; ++i) out[i] = chain[i];
    }
    return;
  }
  const int64_t n = chain[0];
  const float u = rng::uniform(seed, offset + static_cast<uint64_t>(G));
  const int64_t token = vd::sps_next_token(
      tlp, dlp, n, G, V, [&](auto weight, bool scale_by_total) { return block_draw(V, u, scale_by_total, weight, sm); });
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
