// Preallocated KV cache with a length counter: slots [0, length) hold committed
// tokens; a forward writes its T new tokens at [length, length + T) and advances the
// length. Rejecting a suffix is truncate(); accepting a tree path is kv_compact.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace mtad {

struct KVCache {
  at::Tensor k;  // [num_layers, capacity, num_kv_heads, head_dim]
  at::Tensor v;  // same
  int64_t length = 0;

  int64_t capacity() const { return k.size(1); }
  int64_t num_layers() const { return k.size(0); }
  // Drops every slot at and after `n`; throws InputError if n is outside [0, length].
  void truncate(int64_t n);
};

}  // namespace mtad
