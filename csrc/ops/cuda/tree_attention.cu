// Attention of T new tokens against a token-major KV cache under a tree mask (see
// ops/tree_attention.h). One block per (token, head), grid-stride over those; the warps of a
// block split the cache slots and each keeps a float32 online softmax (running max, running
// sum, weighted V accumulator), merged across warps at the end. No score buffer, so the
// prefix length is unbounded.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "ops/cuda/common.cuh"
#include "ops/detail/tree_attention.h"

namespace mtad::cuda {
namespace {

constexpr int kMaxHeadDim = 256;
// Slots a warp scores per iteration: their K loads and shuffle reductions are independent,
// which hides memory latency better than one slot at a time.
constexpr int kSlotsPerIter = 4;

template <class Scalar>
struct AttnParams {
  const Scalar* q;
  const Scalar* k;
  const Scalar* v;
  const bool* mask;  // [tokens, region] or null (causal, region == tokens)
  Scalar* out;
  int64_t tokens, region, heads, kv_heads, head_dim, prefix;
  float scale;
};

// kChunks * 32 >= head_dim: lane l holds dims l, l + 32, ... of q and of its accumulator.
template <class Scalar, int kChunks, int kWarps>
__global__ void __launch_bounds__(kWarps * 32) tree_attention_kernel(const AttnParams<Scalar> p) {
  __shared__ float s_acc[kWarps][kChunks * 32];
  __shared__ float s_m[kWarps];
  __shared__ float s_l[kWarps];

  const int lane = static_cast<int>(threadIdx.x & 31u);
  const int warp = static_cast<int>(threadIdx.x >> 5);
  const int64_t D = p.head_dim;
  const int64_t group = p.heads / p.kv_heads;  // query heads per kv head
  const int64_t slot_stride = p.kv_heads * D;
  const int64_t n_rows = p.tokens * p.heads;

  for (int64_t row = blockIdx.x; row < n_rows; row += gridDim.x) {
    const int64_t t = row / p.heads;
    const int64_t h = row - t * p.heads;
    const int64_t g = h / group;
    const Scalar* kbase = p.k + g * D;
    const Scalar* vbase = p.v + g * D;

    float qr[kChunks];
    float acc[kChunks];
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int d = lane + 32 * c;
      qr[c] = d < D ? to_float(p.q[row * D + d]) : 0.f;  // q [T, H, D]: row = t * H + h
      acc[c] = 0.f;
    }
    const bool* mrow = p.mask != nullptr ? p.mask + t * p.region : nullptr;
    // Causal (no mask): new tokens after t are never attended, so stop the scan there.
    const int64_t end = p.prefix + (mrow != nullptr ? p.region : t + 1);

    float m = -INFINITY;  // running max of this warp's scores
    float l = 0.f;        // running sum of exp(score - m)
    for (int64_t s0 = warp; s0 < end; s0 += int64_t{kWarps} * kSlotsPerIter) {
      bool ok[kSlotsPerIter];
      float score[kSlotsPerIter];
#pragma unroll
      for (int u = 0; u < kSlotsPerIter; ++u) {
        const int64_t s = s0 + int64_t{u} * kWarps;
        // Warp-uniform: depends only on the slot and the token.
        ok[u] = s < end && (s < p.prefix || mrow == nullptr || mrow[s - p.prefix]);
        float part = 0.f;
        if (ok[u]) {
          const Scalar* kr = kbase + s * slot_stride;
#pragma unroll
          for (int c = 0; c < kChunks; ++c) {
            const int d = lane + 32 * c;
            if (d < D) part += qr[c] * to_float(kr[d]);
          }
        }
        score[u] = part;
      }
      // All lanes take part (ok is warp-uniform, masked slots just sum zeros).
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) {
#pragma unroll
        for (int u = 0; u < kSlotsPerIter; ++u) score[u] += __shfl_xor_sync(0xffffffffu, score[u], off);
      }
      bool any = false;
      float smax = -INFINITY;
#pragma unroll
      for (int u = 0; u < kSlotsPerIter; ++u) {
        if (ok[u]) {
          score[u] *= p.scale;
          smax = fmaxf(smax, score[u]);
          any = true;
        }
      }
      if (!any) continue;
      const float m_new = fmaxf(m, smax);
      const float corr = expf(m - m_new);  // 0 for the first attended slot (m = -inf)
      l *= corr;
#pragma unroll
      for (int c = 0; c < kChunks; ++c) acc[c] *= corr;
#pragma unroll
      for (int u = 0; u < kSlotsPerIter; ++u) {
        if (!ok[u]) continue;
        const float pu = expf(score[u] - m_new);
        l += pu;
        const Scalar* vr = vbase + (s0 + int64_t{u} * kWarps) * slot_stride;
#pragma unroll
        for (int c = 0; c < kChunks; ++c) {
          const int d = lane + 32 * c;
          if (d < D) acc[c] += pu * to_float(vr[d]);
        }
      }
      m = m_new;
    }

    // Merge the warps' partial softmaxes: rescale each to the global max.
    if (lane == 0) {
      s_m[warp] = m;
      s_l[warp] = l;
    }
#pragma unroll
    for (int c = 0; c < kChunks; ++c) s_acc[warp][lane + 32 * c] = acc[c];
    __syncthreads();
    // l == 0 exactly iff the warp attended nothing (its m is -inf then; skip it to avoid
    // exp(-inf - -inf) = NaN). A NaN l still propagates, as it should.
    float M = -INFINITY;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      if (s_l[w] != 0.f) M = fmaxf(M, s_m[w]);
    }
    float f[kWarps];
    float L = 0.f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      f[w] = s_l[w] != 0.f ? expf(s_m[w] - M) : 0.f;
      L += s_l[w] * f[w];
    }
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
      float o = 0.f;
#pragma unroll
      for (int w = 0; w < kWarps; ++w) o += s_acc[w][d] * f[w];
      // Nothing attended (prefix 0 and an all-false mask row): zeros.
      p.out[row * D + d] = from_float<Scalar>(L != 0.f ? o / L : 0.f);
    }
    __syncthreads();  // shared memory is rewritten for the next row
  }
}

template <class Scalar, int kChunks>
void launch_warps(const AttnParams<Scalar>& p, int warps, unsigned blocks, cudaStream_t stream) {
  switch (warps) {
    case 4: tree_attention_kernel<Scalar, kChunks, 4><<<blocks, 4 * 32, 0, stream>>>(p); break;
    case 8: tree_attention_kernel<Scalar, kChunks, 8><<<blocks, 8 * 32, 0, stream>>>(p); break;
    default: tree_attention_kernel<Scalar, kChunks, 16><<<blocks, 16 * 32, 0, stream>>>(p); break;
  }
}

template <class Scalar>
void launch_typed(const AttnParams<Scalar>& p, int warps, unsigned blocks, cudaStream_t stream) {
  // Smallest register tile that covers the head dim (D = 64, 128, 256 are exact fits).
  if (p.head_dim <= 32) {
    launch_warps<Scalar, 1>(p, warps, blocks, stream);
  } else if (p.head_dim <= 64) {
    launch_warps<Scalar, 2>(p, warps, blocks, stream);
  } else if (p.head_dim <= 128) {
    launch_warps<Scalar, 4>(p, warps, blocks, stream);
  } else {
    launch_warps<Scalar, 8>(p, warps, blocks, stream);
  }
}

}  // namespace

void tree_attention(DType dt, const void* q, const void* k, const void* v, const bool* mask, void* out,
                    int64_t T, int64_t M, int64_t H, int64_t KVH, int64_t D, int64_t prefix, float scale,
                    cudaStream_t stream) {
  const char* op = "tree_attention";
  if (T < 0 || M < T || H < 0 || KVH < 0 || D < 0 || prefix < 0) fail(op, "negative size or region < tokens");
  if (T == 0 || H == 0 || D == 0) return;  // empty output
  if (KVH == 0 || H % KVH != 0) fail(op, "query heads must be a positive multiple of kv heads");
  if (D > kMaxHeadDim) fail(op, "head dim " + std::to_string(D) + " exceeds the supported maximum of 256");

  const int64_t rows = T * H;
  const int64_t slots = prefix + M;  // most slots one row scans
  // Short scans: few warps (less idle merge work). Long scans: more warps per block, the
  // most when there are too few (token, head) blocks to fill the GPU (decode).
  const int warps = slots < 256 ? 4 : (rows >= 512 ? 8 : 16);
  const unsigned blocks = grid_for(rows, 1);

  dispatch_dtype(dt, op, [&](auto tag) {
    using Scalar = typename decltype(tag)::type;
    const AttnParams<Scalar> p{static_cast<const Scalar*>(q), static_cast<const Scalar*>(k),
                               static_cast<const Scalar*>(v), mask, static_cast<Scalar*>(out), T, M, H, KVH, D,
                               prefix, scale};
    launch_typed(p, warps, blocks, stream);
  });
  check_launch(op);
}

}  // namespace mtad::cuda
