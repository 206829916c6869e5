// CPU kv_compact: whole-row memcpy per layer, layers in parallel.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "ops/detail/kv_compact.h"

namespace mtad::ops::cpu {

void kv_compact(void* k, void* v, int64_t L, int64_t C, int64_t row_bytes, int64_t prefix, const int64_t* slots,
                int64_t A) {
  // Layers in parallel only when there is enough to copy (a few decode tokens are not).
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 18) / std::max<int64_t>(1, A * row_bytes));
  at::parallel_for(0, 2 * L, grain, [&](int64_t begin, int64_t end) {
    for (int64_t task = begin; task < end; ++task) {
      auto* layer = static_cast<char*>(task < L ? k : v) + (task % L) * C * row_bytes;
      // In increasing i: a source slot may be the destination of a later row
      // (slots[i] == prefix + j, j > i), so it must be read before that row is written.
      // Source and destination of one row never overlap, so memcpy is safe.
      for (int64_t i = 0; i < A; ++i) {
        const int64_t dst = prefix + i;
        if (slots[i] == dst) continue;  // already in place
        std::memcpy(layer + dst * row_bytes, layer + slots[i] * row_bytes, size_t(row_bytes));
      }
    }
  });
}

}  // namespace mtad::ops::cpu
