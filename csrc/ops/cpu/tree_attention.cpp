#include "ops/tree_attention.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <limits>
#include <vector>

#include "ops/cpu/simd.h"

namespace mtad::ops::cpu {

void tree_attention_tasks_f32(const float* q, const float* k, const float* v, const bool* mask, float* out,
                              int64_t T, int64_t M, int64_t H, int64_t KVH, int64_t D, int64_t prefix, float scale,
                              int64_t task0, int64_t task1, float* scores) {
  const int64_t group = H / KVH;
  const int64_t L = prefix + M;
  // The key rows are read in place from the cache.
  for (int64_t task = task0; task < task1; ++task) {
    const int64_t t = task / H, h = task % H, g = h / group;
    const float* qv = q + (t * H + h) * D;
    float* o = out + t * H * D + h * D;
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t s = 0; s < L; ++s) {
      const int64_t j = s - prefix;
      const bool allowed = j < 0 || (mask ? mask[t * M + j] : j <= t);
      if (!allowed) {
        scores[s] = -std::numeric_limits<float>::infinity();
        continue;
      }
      scores[s] = scale * dot(qv, k + (s * KVH + g) * D, D);
      mx = std::max(mx, scores[s]);
    }
    for (int64_t d = 0; d < D; ++d) o[d] = 0.f;
    if (mx == -std::numeric_limits<float>::infinity()) continue;  // attends to nothing
    float sum = 0.f;
    for (int64_t s = 0; s < L; ++s) {
      if (scores[s] == -std::numeric_limits<float>::infinity()) continue;
      const float p = std::exp(scores[s] - mx);
      sum += p;
      axpy(p, v + (s * KVH + g) * D, o, D);
    }
    const float inv = 1.f / sum;
    for (int64_t d = 0; d < D; ++d) o[d] *= inv;
  }
}

void tree_attention_f32(const float* q, const float* k, const float* v, const bool* mask, float* out, int64_t T,
                        int64_t M, int64_t H, int64_t KVH, int64_t D, int64_t prefix, float scale) {
  const int64_t L = prefix + M;
  // One task per (query, head).
  at::parallel_for(0, T * H, grain_for(2 * L * D), [&](int64_t begin, int64_t end) {
    std::vector<float> scores(L);
    tree_attention_tasks_f32(q, k, v, mask, out, T, M, H, KVH, D, prefix, scale, begin, end, scores.data());
  });
}

}  // namespace mtad::ops::cpu
