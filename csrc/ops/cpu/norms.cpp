#include "ops/detail/norms.h"

#include <cmath>

namespace mtad::ops::cpu {

void rms_norm_f32(const float* x, const float* w, float* y, int64_t T, int64_t H, float eps) {
  for (int64_t t = 0; t < T; ++t) {
    const float* xr = x + t * H;
    float* yr = y + t * H;
    float ss = 0.f;
    for (int64_t i = 0; i < H; ++i) ss += xr[i] * xr[i];
    const float inv = 1.f / std::sqrt(ss / float(H) + eps);
    for (int64_t i = 0; i < H; ++i) yr[i] = w[i] * (xr[i] * inv);
  }
}

void layer_norm_f32(const float* x, const float* w, const float* b, float* y, int64_t T, int64_t H, float eps) {
  for (int64_t t = 0; t < T; ++t) {
    const float* xr = x + t * H;
    float* yr = y + t * H;
    float mean = 0.f;
    for (int64_t i = 0; i < H; ++i) mean += xr[i];
    mean /= float(H);
    float var = 0.f;
    for (int64_t i = 0; i < H; ++i) var += (xr[i] - mean) * (xr[i] - mean);
    const float inv = 1.f / std::sqrt(var / float(H) + eps);
    for (int64_t i = 0; i < H; ++i) {
      const float n = (xr[i] - mean) * inv;
      yr[i] = (w ? n * w[i] : n) + (b ? b[i] : 0.f);
    }
  }
}

}  // namespace mtad::ops::cpu
