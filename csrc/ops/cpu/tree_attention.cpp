#include "ops/tree_attention.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <limits>
#include <vector>

#include "ops/cpu/simd.h"

namespace mtad::ops::cpu {

void tree_attention_f32(const float* q, const float* k, const float* v, const bool* mask, float* out, int64_t T,
                        int64_t M, int64_t H, int64_t KVH, int64_t D, int64_t prefix, float scale) {
  const int64_t group = H / KVH;
  const int64_t L = prefix + M;
  // One task per (query, head); the key rows are read in place from the cache.
  at::parallel_for(0, T * H, grain_for(2 * L * D), [&](int64_t begin, int64_t end) {
    std::vector<float> scores(L);
    for (int64_t task = begin; task < end; ++task) {
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
  });
}

}  // namespace mtad::ops::cpu
