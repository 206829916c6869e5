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

#include "ops/linear.h"

namespace mtad::ops {

void linear_add_(at::Tensor& y, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b);
at::Tensor gate_up_silu(const at::Tensor& x, const at::Tensor& w_gate, const at::Tensor& w_up,
                        const at::Tensor& b_gate, const at::Tensor& b_up);
at::Tensor linear_relu(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b);
at::Tensor qkv_rope(const at::Tensor& x, const at::Tensor& wq, const at::Tensor& wk, const at::Tensor& wv,
                    const at::Tensor& bq, const at::Tensor& bk, const at::Tensor& bv, const at::Tensor& positions,
                    const at::Tensor& inv_freq, at::Tensor& k_out, at::Tensor& v_out);

namespace cpu {

// out[t, n] = silu(x[t] . gate[n] + bg[n]) * (x[t] . up[n] + bu[n]), out [T, gate.rows], n in [n0, n1).
void gate_up_rows(const float* x, int64_t T, const Mat& gate, const Mat& up, float* out, int64_t n0, int64_t n1);

// cos / sin tables [T, half] of RoPE's angles float(position) * inv_freq[i].
void rope_tables(const int64_t* positions, const float* inv_freq, int64_t T, int64_t half, float* cos_out,
                 float* sin_out);
// A projection whose output rows are heads of head_dim D. With rope (tables [T, D/2]) a
// unit is the rotated pair of rows (h * D + i, h * D + i + D/2), u = h * D/2 + i, computed
// and rotated together; without, a unit is one row. Writes y[t * ldy + row] for units [u0, u1).
inline int64_t proj_units(const Mat& w, bool rope) { return rope ? w.rows / 2 : w.rows; }
void proj_rows(const float* x, int64_t T, const Mat& w, int64_t head_dim, const float* rope_cos,
               const float* rope_sin, float* y, int64_t ldy, int64_t u0, int64_t u1);

// out[t] = table[ids[t]] widened to float32 (an embedding lookup), table [V, cols].
void gather_rows(const Mat& table, const int64_t* ids, int64_t T, float* out);

}  // namespace cpu
}  // namespace mtad::ops
