#include "ops/linear.h"

#include <ATen/Parallel.h>

#include "ops/cpu/matvec.h"

namespace mtad::ops::cpu {
namespace {

// Rows in order: each thread reads one sequential stream of weights (what the hardware
// prefetcher follows best), and a row stays in L1 while a block of activation rows uses it.
template <class W>
void matvec_impl(const float* x, int64_t T, const W* w, const float* b, int64_t K, Epilogue e, float* y, int64_t ldy,
                 const float* base, int64_t ldbase, int64_t n0, int64_t n1) {
  for_each_dot(w, K, n0, n1, x, T, [&](int64_t n, int64_t t, float dot) {
    const float v = dot + (b ? b[n] : 0.f);
    switch (e) {
      case Epilogue::kStore: y[t * ldy + n] = v; break;
      case Epilogue::kRelu: y[t * ldy + n] = v > 0.f ? v : 0.f; break;
      case Epilogue::kAdd: y[t * ldy + n] = base[t * ldbase + n] + v; break;
    }
  });
}

}  // namespace

void matvec_rows(const float* x, int64_t T, const Mat& m, Epilogue e, float* y, int64_t ldy, const float* base,
                 int64_t ldbase, int64_t n0, int64_t n1) {
  with_weights(m, [&](auto w) { matvec_impl(x, T, w, m.bias, m.cols, e, y, ldy, base, ldbase, n0, n1); });
}

void matvec(const float* x, int64_t T, const Mat& m, Epilogue e, float* y, int64_t ldy, const float* base,
            int64_t ldbase) {
  at::parallel_for(0, m.rows, std::max<int64_t>(16, grain_for(m.cols * T)), [&](int64_t begin, int64_t end) {
    matvec_rows(x, T, m, e, y, ldy, base, ldbase, begin, end);
  });
}

}  // namespace mtad::ops::cpu
