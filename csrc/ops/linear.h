// y[T, N] = x[T, K] @ w[N, K]^T (+ b[N]). Weights in the Hugging Face [out, in] layout.
// On the CPU, x and b are float32 and w may be float32, float16 or bfloat16 (half the
// bytes to stream; widened to float32 inside the kernel).
#pragma once
#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cstdint>

namespace mtad::ops {
at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b /*undefined: none*/);
namespace cpu {

enum class WType : uint8_t { F32, F16, BF16 };

// A weight matrix [rows, cols] (row-major, contiguous) and its optional bias [rows].
struct Mat {
  const void* w = nullptr;
  WType type = WType::F32;
  int64_t rows = 0, cols = 0;
  const float* bias = nullptr;
};
// The Mat of a CPU weight tensor [N, K] (float32, float16 or bfloat16) and bias (undefined: none).
Mat mat_of(const at::Tensor& w, const at::Tensor& b);

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

}  // namespace cpu
}  // namespace mtad::ops
