// RMSNorm (Llama) and LayerNorm (OPT) over the last dimension of x [T, H].
#pragma once
#include <ATen/core/Tensor.h>

#include "ops/detail/norms.h"

namespace mtad::ops {
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& w, double eps);
// w and b may be undefined (layer_norm_elementwise_affine = false).
at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, double eps);
}  // namespace mtad::ops
