#include "ops/detail/rope.h"

#include <cmath>
#include <vector>

namespace mtad::ops::cpu {

void rope_f32(float* x, const int64_t* positions, const float* inv_freq, int64_t T, int64_t heads, int64_t D) {
  const int64_t half = D / 2;
  std::vector<float> cs(half), sn(half);
  for (int64_t t = 0; t < T; ++t) {
    // The angle is a float32 product, as in the reference implementation.
    for (int64_t i = 0; i < half; ++i) {
      const float angle = float(positions[t]) * inv_freq[i];
      cs[i] = std::cos(angle);
      sn[i] = std::sin(angle);
    }
    for (int64_t h = 0; h < heads; ++h) {
      float* v = x + (t * heads + h) * D;
      for (int64_t i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * cs[i] - b * sn[i];
        v[i + half] = b * cs[i] + a * sn[i];
      }
    }
  }
}

}  // namespace mtad::ops::cpu
