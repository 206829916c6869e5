#include "ops/tree_attention.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ops/cpu/simd.h"

namespace mtad::ops::cpu {

MaskRows mask_rows(const bool* mask, int64_t T, int64_t M) {
  MaskRows r;
  r.off.resize(T + 1, 0);
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t j = 0; j < M; ++j)
      if (mask[t * M + j]) r.idx.push_back(static_cast<int32_t>(j));
    r.off[t + 1] = static_cast<int64_t>(r.idx.size());
  }
  return r;
}

void tree_attention_tasks_f32(const float* q, const float* k, const float* v, const MaskRows* rows, float* out,
                              int64_t T, int64_t M, int64_t H, int64_t KVH, int64_t D, int64_t prefix, float scale,
                              int64_t task0, int64_t task1, float* scores) {
  (void)M;
  const int64_t group = H / KVH, stride = KVH * D;
  // The key rows are read in place from the cache.
  for (int64_t task = task0; task < task1; ++task) {
    const int64_t t = task / H, h = task % H, g = h / group;
    const float* qv = q + (t * H + h) * D;
    float* o = out + t * H * D + h * D;
    // Slots seen: [0, dense) in order, then the listed masked slots (causal: up to t itself).
    const int64_t dense = prefix + (rows ? 0 : t + 1);
    const int32_t* listed = rows ? rows->idx.data() + rows->off[t] : nullptr;
    const int64_t n = dense + (rows ? rows->off[t + 1] - rows->off[t] : 0);
    auto slot = [&](int64_t i) { return i < dense ? i : prefix + listed[i - dense]; };
    for (int64_t d = 0; d < D; ++d) o[d] = 0.f;
    if (n == 0) continue;  // attends to nothing
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < n; i += 4) {
      const float* r[4];
      for (int j = 0; j < 4; ++j) r[j] = k + slot(std::min(i + j, n - 1)) * stride + g * D;
      float s4[4];
      dot4(qv, r, D, s4);
      for (int64_t j = 0; j < 4 && i + j < n; ++j) {
        scores[i + j] = scale * s4[j];
        mx = std::max(mx, scores[i + j]);
      }
    }
    float sum = 0.f;
    for (int64_t i = 0; i < n; ++i) {
      const float p = std::exp(scores[i] - mx);
      sum += p;
      axpy(p, v + slot(i) * stride + g * D, o, D);
    }
    const float inv = 1.f / sum;
    for (int64_t d = 0; d < D; ++d) o[d] *= inv;
  }
}

void tree_attention_f32(const float* q, const float* k, const float* v, const bool* mask, float* out, int64_t T,
                        int64_t M, int64_t H, int64_t KVH, int64_t D, int64_t prefix, float scale) {
  const int64_t L = prefix + M;
  const MaskRows rows = mask ? mask_rows(mask, T, M) : MaskRows{};
  // One task per (query, head).
  at::parallel_for(0, T * H, grain_for(2 * L * D), [&](int64_t begin, int64_t end) {
    std::vector<float> scores(L);
    tree_attention_tasks_f32(q, k, v, mask ? &rows : nullptr, out, T, M, H, KVH, D, prefix, scale, begin, end,
                             scores.data());
  });
}

}  // namespace mtad::ops::cpu
