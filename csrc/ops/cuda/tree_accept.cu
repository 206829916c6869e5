// Trie acceptance on the GPU: one thread walks the trie (a chain of a few dozen
// dependent steps, the shared __host__ __device__ code of ops/detail/tree_accept.h), then, for
// sampling, one block draws the next token from the last node's residual.
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/cuda/common.cuh"
#include "ops/detail/tree_accept.h"
#include "ops/rng.h"

namespace mtad::cuda {
namespace {

namespace td = mtad::tree_accept_detail;

constexpr int kThreads = 512;  // a multiple of 32, at most 32 warps (block_draw's scan)

__global__ void tree_accept_kernel(const int64_t* best, const int64_t* parents, const int64_t* tokens, int64_t N,
                                   int64_t V, int64_t* info) {
  td::greedy_walk(best, parents, tokens, N, V, info);
}

__global__ void __launch_bounds__(kThreads)
    tree_sample_kernel(const float* __restrict__ logp, int64_t V, const int64_t* __restrict__ parents,
                       const int64_t* __restrict__ tokens, int64_t N, uint64_t seed, uint64_t offset,
                       int64_t* __restrict__ info) {
  __shared__ DrawSmem sm;
  if (threadIdx.x == 0) td::sample_walk(logp, V, parents, tokens, N, seed, offset, info);
  __syncthreads();
  if (info[td::kStatus] != td::kOk) return;  // the same branch on every thread
  const float u = rng::uniform(seed, offset + static_cast<uint64_t>(N));
  const int64_t token = td::next_token(
      logp, V, N, info, [&](auto weight, bool scale_by_total) { return block_draw(V, u, scale_by_total, weight, sm); });
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
