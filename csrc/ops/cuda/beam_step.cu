// The CUDA pieces of beam_step (ops/beam_step.h); ops/beam_step.cpp strings them together
// with normalize, at::topk over the selection keys (unique, so ties cannot reorder) or
// sample_repeat for draws with replacement.
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/cuda/common.cuh"
#include "ops/detail/beam_step.h"

namespace mtad::cuda {
namespace {

using sampling_detail::gumbel;
using sampling_detail::rank_index;
using sampling_detail::rank_key;

constexpr int kThreads = 256;
constexpr uint64_t kSignBit = uint64_t{1} << 63;

// rank keys are unsigned; flipping the top bit orders them as int64 (at::topk's type).
__device__ __forceinline__ int64_t to_signed(uint64_t k) { return static_cast<int64_t>(k ^ kSignBit); }
__device__ __forceinline__ uint64_t to_unsigned(int64_t k) { return static_cast<uint64_t>(k) ^ kSignBit; }

__global__ void __launch_bounds__(kThreads)
    beam_keys_kernel(const float* __restrict__ lp, const float* __restrict__ scores, int64_t* __restrict__ keys,
                     int64_t rows, int64_t V, bool noise, uint64_t seed, uint64_t offset) {
  const int64_t N = rows * V;
  for (int64_t f = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; f < N;
       f += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float joint = scores[f / V] + lp[f];
    if (!(joint > -INFINITY)) {
      keys[f] = INT64_MIN;  // dead: never chosen
      continue;
    }
    const float key = noise ? joint + gumbel(seed, offset + static_cast<uint64_t>(f)) : joint;
    keys[f] = to_signed(rank_key(key, f, N));
  }
}

__global__ void __launch_bounds__(kThreads)
    beam_joint_kernel(const float* __restrict__ lp, const float* __restrict__ scores, float* __restrict__ joint,
                      int64_t rows, int64_t V) {
  const int64_t N = rows * V;
  for (int64_t f = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; f < N;
       f += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    joint[f] = scores[f / V] + lp[f];
  }
}

// One block. M is the beam width (a handful), so each output finds its rank by comparing
// with every other chosen candidate rather than by a sort. A dead key (INT64_MIN: fewer live
// candidates than M) becomes a dead beam after the live ones (ops/beam_step.h), so that the
// caller need not read how many live to size the outputs.
__global__ void __launch_bounds__(kThreads)
    beam_finish_kernel(const int64_t* __restrict__ chosen, bool from_keys, int64_t M, const float* __restrict__ lp,
                       const float* __restrict__ scores, int64_t V, int64_t N, int64_t* __restrict__ work_flat,
                       float* __restrict__ work_joint, int64_t* __restrict__ parent, int64_t* __restrict__ token,
                       float* __restrict__ token_logprob, float* __restrict__ score) {
  __shared__ float red[32];
  float mx = -INFINITY;
  for (int64_t i = threadIdx.x; i < M; i += blockDim.x) {
    if (from_keys && chosen[i] == INT64_MIN) {
      work_flat[i] = N + i;  // after every live candidate, in draw order
      work_joint[i] = -INFINITY;
      continue;
    }
    int64_t f = from_keys ? rank_index(to_unsigned(chosen[i]), N) : chosen[i];
    f = f < 0 ? 0 : (f >= N ? N - 1 : f);  // never index outside the candidates
    const float joint = scores[f / V] + lp[f];
    work_flat[i] = f;
    work_joint[i] = joint;
    mx = fmaxf(mx, joint);
  }
  mx = block_reduce_max(mx, red);  // also makes work_* visible to the whole block
  float s = 0.f;
  for (int64_t i = threadIdx.x; i < M; i += blockDim.x)
    if (work_flat[i] < N) s += expf(work_joint[i] - mx);
  const float log_s = static_cast<float>(log(static_cast<double>(block_reduce_sum(s, red))));
  for (int64_t i = threadIdx.x; i < M; i += blockDim.x) {
    const int64_t fi = work_flat[i];
    const float ji = work_joint[i];
    // Descending joint, ties to the lower candidate, then to the earlier draw.
    int64_t rank = 0;
    for (int64_t k = 0; k < M; ++k) {
      const int64_t fk = work_flat[k];
      const float jk = work_joint[k];
      rank += jk > ji || (jk == ji && (fk < fi || (fk == fi && k < i)));
    }
    if (fi >= N) {  // dead
      parent[rank] = 0;
      token[rank] = 0;
      token_logprob[rank] = -INFINITY;
      score[rank] = -INFINITY;
      continue;
    }
    parent[rank] = fi / V;
    token[rank] = fi % V;
    token_logprob[rank] = lp[fi];
    score[rank] = (ji - mx) - log_s;
  }
}

void check_sizes(const char* op, int64_t rows, int64_t V) {
  if (rows < 0 || V < 0) fail(op, "negative size");
  if (rows * V >= INT32_MAX) fail(op, "2^31 or more candidates are not supported");
}

}  // namespace

void beam_keys(const float* lp, const float* scores, int64_t* keys, int64_t rows, int64_t V, bool noise,
               uint64_t seed, uint64_t offset, cudaStream_t stream) {
  check_sizes("beam_keys", rows, V);
  if (rows * V == 0) return;
  beam_keys_kernel<<<grid_for(rows * V, kThreads), kThreads, 0, stream>>>(lp, scores, keys, rows, V, noise, seed,
                                                                          offset);
  check_launch("beam_keys");
}

void beam_joint(const float* lp, const float* scores, float* joint, int64_t rows, int64_t V, cudaStream_t stream) {
  check_sizes("beam_joint", rows, V);
  if (rows * V == 0) return;
  beam_joint_kernel<<<grid_for(rows * V, kThreads), kThreads, 0, stream>>>(lp, scores, joint, rows, V);
  check_launch("beam_joint");
}

void beam_finish(const int64_t* chosen, bool from_keys, int64_t M, const float* lp, const float* scores, int64_t V,
                 int64_t N, int64_t* work_flat, float* work_joint, int64_t* parent, int64_t* token,
                 float* token_logprob, float* score, cudaStream_t stream) {
  if (M < 0 || V <= 0 || N < V) fail("beam_finish", "bad sizes");
  if (M == 0) return;
  beam_finish_kernel<<<1, kThreads, 0, stream>>>(chosen, from_keys, M, lp, scores, V, N, work_flat, work_joint,
                                                 parent, token, token_logprob, score);
  check_launch("beam_finish");
}

}  // namespace mtad::cuda
