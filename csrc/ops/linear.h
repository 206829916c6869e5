// y[T, N] = x[T, K] @ w[N, K]^T (+ b[N]). Weights in the Hugging Face [out, in] layout.
// On the CPU, x and b are float32 and w may be float32, float16 or bfloat16 (half the
// bytes to stream; widened to float32 inside the kernel).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "ops/detail/linear.h"

namespace mtad::ops {
at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b /*undefined: none*/);
namespace cpu {

// The Mat of a CPU weight tensor and bias (undefined: none): a row-major [N, K] tensor,
// or a panel tensor [panels, K, panel_rows()] made by pack_panels with `packing`, of N = `rows` rows.
Mat mat_of(const at::Tensor& w, const at::Tensor& b, int64_t rows = -1, Packing packing = {});
// Writes w [N, K] (CPU, contiguous) in panels into out [panel_count(N), K, panel_rows()] (same
// dtype, contiguous; e.g. carved from the weight arena).
void pack_panels(const at::Tensor& w, Packing packing, at::Tensor& out);

}  // namespace cpu
}  // namespace mtad::ops
