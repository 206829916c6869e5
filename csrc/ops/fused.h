// Fused matrix kernels of a decoder block. Weights in the Hugging Face [out, in] layout;
// on the CPU x and biases are float32 and weights float32, float16 or bfloat16 (widened
// in registers), as in ops/linear.h. Biases may be undefined (none).
//
//   linear_add_(y, x, w, b):   y += x @ w^T + b, in place: an output projection added
//                              straight into the residual stream.
//   gate_up_silu(x, wg, wu, bg, bu) = silu(x @ wg^T + bg) * (x @ wu^T + bu): SwiGLU's two
//                              input projections in one pass, SiLU*mul as the epilogue.
//   linear_relu(x, w, b)     = relu(x @ w^T + b) (OPT's fc1).
//   qkv_rope(x, wq, wk, wv, bq, bk, bv, positions, inv_freq, k_out, v_out): the three
//                              attention projections in one pass; RoPE (ops/rope.h) is
//                              applied to q and k when inv_freq is defined; k and v are
//                              written into k_out / v_out [T, KVH, D] (e.g. the cache's new
//                              rows); returns q [T, H, D].
//
// The cpu:: functions compute a range of output columns for all T rows of x, so a caller
// that runs several of them in one parallel region splits each range across its threads
// (model/cpu_forward.cpp runs a whole decoder stack that way); the ops above run each
// one in a parallel region of its own. On a GPU the ops compose the unfused ones.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "ops/detail/fused.h"
#include "ops/linear.h"

namespace mtad::ops {

void linear_add_(at::Tensor& y, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b);
at::Tensor gate_up_silu(const at::Tensor& x, const at::Tensor& w_gate, const at::Tensor& w_up,
                        const at::Tensor& b_gate, const at::Tensor& b_up);
at::Tensor linear_relu(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b);
at::Tensor qkv_rope(const at::Tensor& x, const at::Tensor& wq, const at::Tensor& wk, const at::Tensor& wv,
                    const at::Tensor& bq, const at::Tensor& bk, const at::Tensor& bv, const at::Tensor& positions,
                    const at::Tensor& inv_freq, at::Tensor& k_out, at::Tensor& v_out);

}  // namespace mtad::ops
