#include "mtad/kv_cache.h"

#include "mtad/errors.h"

namespace mtad {

void KVCache::truncate(int64_t n) {
  if (n < 0 || n > length)
    throw InputError("truncate: length " + std::to_string(n) + " is outside [0, " + std::to_string(length) + "]");
  length = n;
}

}  // namespace mtad
