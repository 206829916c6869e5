// kv_compact on the GPU: one launch moves the accepted rows of every layer of K and V.
// A thread owns one word position (layer, cache, offset within a row) and walks the rows
// in order, so a source slot that is also a later destination (slots[i] == prefix + j,
// j > i) is read before it is overwritten, with no synchronisation between threads.
#include <cuda_runtime.h>

#include <cstdint>

#include "ops/cuda/common.cuh"
#include "ops/detail/kv_compact.h"

namespace mtad::cuda {
namespace {

constexpr int kThreads = 256;

// k and v are not __restrict__: each layer is read and written through the same pointer.
template <class W>
__global__ void __launch_bounds__(kThreads)
    kv_compact_kernel(W* k, W* v, int64_t L, int64_t C, int64_t words, int64_t prefix,
                      const int64_t* __restrict__ slots, int64_t A) {
  const int64_t per_cache = L * words;
  for (int64_t t = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; t < 2 * per_cache;
       t += int64_t{gridDim.x} * blockDim.x) {
    W* base = t < per_cache ? k : v;
    const int64_t r = t % per_cache, l = r / words, w = r % words;
    W* layer = base + l * C * words + w;
    for (int64_t i = 0; i < A; ++i) {
      const int64_t src = slots[i], dst = prefix + i;
      if (src != dst) layer[dst * words] = layer[src * words];
    }
  }
}

template <class W>
void launch(void* k, void* v, int64_t L, int64_t C, int64_t row_bytes, int64_t prefix, const int64_t* slots,
            int64_t A, cudaStream_t stream) {
  const int64_t words = row_bytes / int64_t{sizeof(W)};
  kv_compact_kernel<W><<<grid_for(2 * L * words, kThreads), kThreads, 0, stream>>>(
      static_cast<W*>(k), static_cast<W*>(v), L, C, words, prefix, slots, A);
}

}  // namespace

void kv_compact(void* k, void* v, int64_t L, int64_t C, int64_t row_bytes, int64_t prefix, const int64_t* slots,
                int64_t A, cudaStream_t stream) {
  if (L < 0 || C < 0 || row_bytes < 0 || prefix < 0 || A < 0) fail("kv_compact", "negative size");
  if (L == 0 || row_bytes == 0 || A == 0) return;
  // The widest word that divides the row and both base addresses (16 bytes for half
  // rows of head_dim 64+).
  const auto align = static_cast<uint64_t>(row_bytes) | reinterpret_cast<uintptr_t>(k) |
                     reinterpret_cast<uintptr_t>(v);
  if (align % 16 == 0) {
    launch<uint4>(k, v, L, C, row_bytes, prefix, slots, A, stream);
  } else if (align % 8 == 0) {
    launch<uint2>(k, v, L, C, row_bytes, prefix, slots, A, stream);
  } else if (align % 4 == 0) {
    launch<uint32_t>(k, v, L, C, row_bytes, prefix, slots, A, stream);
  } else if (align % 2 == 0) {
    launch<uint16_t>(k, v, L, C, row_bytes, prefix, slots, A, stream);
  } else {
    launch<uint8_t>(k, v, L, C, row_bytes, prefix, slots, A, stream);
  }
  check_launch("kv_compact");
}

}  // namespace mtad::cuda
