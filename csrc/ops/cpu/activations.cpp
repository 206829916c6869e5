#include "ops/detail/activations.h"

#include <cmath>

namespace mtad::ops::cpu {

void silu_mul_f32(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.f + std::exp(-gate[i])) * up[i];
}

void relu_f32(float* x, int64_t n) {
  // NaN passes through, as torch.relu and the CUDA kernel do.
  for (int64_t i = 0; i < n; ++i) x[i] = x[i] < 0.f ? 0.f : x[i];
}

}  // namespace mtad::ops::cpu
