// The CPU's one-thread inverse-CDF draw, shared by the acceptance kernels (cpu/verify.cpp,
// cpu/tree_accept.cpp); cuda::block_draw (ops/cuda/common.cuh) is its block-wide twin.
#pragma once

#include <cstdint>

namespace mtad::ops::cpu {

// ops::sample's draw over weights w(v), v in [0, V): the first id whose running sum (in
// id order, double) exceeds u, or u * the sum of all weights when scale_by_total; if
// rounding leaves none, the last id with positive weight. -1 when every weight is 0, or
// scale_by_total and the total is not positive (e.g. NaN).
template <class Weight>
int64_t draw_weighted(int64_t V, float u, bool scale_by_total, Weight weight) {
  double target = u;
  if (scale_by_total) {
    double total = 0.0;
    for (int64_t v = 0; v < V; ++v) total += weight(v);
    if (!(total > 0.0)) return -1;
    target = u * total;
  }
  double cum = 0.0;
  int64_t last = -1;
  for (int64_t v = 0; v < V; ++v) {
    const float w = weight(v);
    if (!(w > 0.f)) continue;
    cum += w;
    last = v;
    if (cum > target) return v;
  }
  return last;
}

}  // namespace mtad::ops::cpu
