// Kernels of ops/fused.h (layout: ops/detail/common.h): the CPU kernels' declarations,
// on raw pointers (the Mat of ops/detail/linear.h). There is no CUDA kernel: on a GPU the
// fused ops compose the unfused ones.
#pragma once

#include <cstdint>

#include "ops/detail/common.h"
#include "ops/detail/linear.h"

namespace mtad::ops::cpu {

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

}  // namespace mtad::ops::cpu
