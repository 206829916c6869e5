// Kernels of ops/linear.h (layout: ops/detail/common.h): the CPU matrix kernels' types and
// declarations, on raw pointers. There is no CUDA kernel: on a GPU linear is cuBLAS.
#pragma once

#include <algorithm>
#include <cstdint>

#include "ops/detail/common.h"

namespace mtad::ops::cpu {

enum class WType : uint8_t { F32, F16, BF16 };

// How a CPU weight matrix is laid out: row-major [rows, cols] (as in the file), or in
// panels of panel_rows() rows (ops/cpu/panels.h), plain or with RoPE's rotated row pairs together.
enum class Layout : uint8_t { kRows, kPanels, kRopePanels };
struct Packing {
  Layout layout = Layout::kPanels;
  int64_t head_dim = 0;  // kRopePanels: rows are heads of head_dim, pairs (i, i + head_dim / 2)
};

// A weight matrix of `rows` outputs and `cols` inputs and its optional bias [rows].
struct Mat {
  const void* w = nullptr;
  WType type = WType::F32;
  int64_t rows = 0, cols = 0;
  const float* bias = nullptr;
  Layout layout = Layout::kRows;
  int64_t head_dim = 0;
};
// Rows per panel in this build: 8 (AVX2) or 16 (AVX-512), ops/cpu/panels.h. A function, so
// that code compiled for another instruction set (the module, the benchmarks) asks the
// kernels' build.
int64_t panel_rows();
// Panels a matrix of `rows` rows takes in `layout` (the last one zero-padded).
int64_t panel_count(int64_t rows, Layout layout);

// What a matvec writes for output column n of row t, v = x[t] . w[n] + bias[n]:
enum class Epilogue : uint8_t {
  kStore,  // y[t, n] = v
  kRelu,   // y[t, n] = max(v, 0)
  kAdd,    // y[t, n] = base[t, n] + v   (base may be y itself)
};

// Streams each weight row once per block of 32 rows of x (T small: decode and tree
// verify). x [T, w.cols] contiguous; y and base have row strides ldy and ldbase.
// Computes output columns [n0, n1) only: a caller running several kernels in one
// parallel region splits [0, w.rows) across its threads.
void matvec_rows(const float* x, int64_t T, const Mat& w, Epilogue e, float* y, int64_t ldy, const float* base,
                 int64_t ldbase, int64_t n0, int64_t n1);
// matvec_rows over all columns in one parallel region of its own.
void matvec(const float* x, int64_t T, const Mat& w, Epilogue e, float* y, int64_t ldy, const float* base,
            int64_t ldbase);

// [begin, end) of part `i` of `n` items split in `parts` contiguous ranges; inner
// boundaries are multiples of `align` (whole cache lines of output per thread).
inline void split_range(int64_t n, int64_t i, int64_t parts, int64_t align, int64_t& begin, int64_t& end) {
  const int64_t blocks = (n + align - 1) / align;
  begin = std::min(n, blocks * i / parts * align);
  end = i + 1 == parts ? n : std::min(n, blocks * (i + 1) / parts * align);
}

}  // namespace mtad::ops::cpu
