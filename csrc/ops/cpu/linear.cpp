#include "ops/linear.h"

#include <ATen/Parallel.h>

#include "ops/cpu/matvec.h"
#include "ops/cpu/panels.h"

namespace mtad::ops::cpu {
namespace {

inline float epilogue(Epilogue e, float v, const float* base, int64_t t, int64_t ldbase, int64_t n) {
  switch (e) {
    case Epilogue::kStore: return v;
    case Epilogue::kRelu: return v < 0.f ? 0.f : v;  // NaN passes, as torch.relu
    default: return base[t * ldbase + n] + v;
  }
}

// Rows in order: each thread reads one sequential stream of weights (what the hardware
// prefetcher follows best), and a row stays in L1 while a block of activation rows uses it.
template <class W>
void matvec_impl(const float* x, int64_t T, const W* w, const float* b, int64_t K, Epilogue e, float* y, int64_t ldy,
                 const float* base, int64_t ldbase, int64_t n0, int64_t n1) {
  for_each_dot(w, K, n0, n1, x, T, [&](int64_t n, int64_t t, float dot) {
    y[t * ldy + n] = epilogue(e, dot + (b ? b[n] : 0.f), base, t, ldbase, n);
  });
}

// The same on panels (ops/cpu/panels.h); n0 is a multiple of kPanelRows.
template <class W>
void matvec_panels(const float* x, int64_t T, const W* w, const float* b, int64_t K, Epilogue e, float* y,
                   int64_t ldy, const float* base, int64_t ldbase, int64_t n0, int64_t n1) {
  alignas(32) float out[kPanelTileFloats];
  const int64_t p0 = n0 / kPanelRows;
  const char* from = reinterpret_cast<const char*>(w + p0 * kPanelRows * K);
  for_each_panel_tile(p0, (n1 + kPanelRows - 1) / kPanelRows, K, sizeof(W), T,
                      [&](int64_t p, int nv, int64_t t0, int tb, int64_t pf_first, int64_t pf_count) {
    panel_tile_dyn(w + p * kPanelRows * K, nv, tb, K, x + t0 * K, K, out, Prefetch{from, pf_first, pf_count});
    const int64_t first = p * kPanelRows, last = std::min(n1, first + nv * kPanelRows);
    for (int j = 0; j < tb; ++j) {
      const float* o = out + j * nv * kPanelRows - first;
      const int64_t t = t0 + j;
      for (int64_t n = first; n < last; ++n) y[t * ldy + n] = epilogue(e, o[n] + (b ? b[n] : 0.f), base, t, ldbase, n);
    }
  });
}

}  // namespace

void matvec_rows(const float* x, int64_t T, const Mat& m, Epilogue e, float* y, int64_t ldy, const float* base,
                 int64_t ldbase, int64_t n0, int64_t n1) {
  with_weights(m, [&](auto w) {
    if (m.layout == Layout::kPanels)
      matvec_panels(x, T, w, m.bias, m.cols, e, y, ldy, base, ldbase, n0, n1);
    else
      matvec_impl(x, T, w, m.bias, m.cols, e, y, ldy, base, ldbase, n0, n1);
  });
}

void matvec(const float* x, int64_t T, const Mat& m, Epilogue e, float* y, int64_t ldy, const float* base,
            int64_t ldbase) {
  // Chunks of whole panels, which every layout accepts.
  const int64_t units = (m.rows + kPanelRows - 1) / kPanelRows;
  at::parallel_for(0, units, std::max<int64_t>(2, grain_for(kPanelRows * m.cols * T)), [&](int64_t begin, int64_t end) {
    matvec_rows(x, T, m, e, y, ldy, base, ldbase, begin * kPanelRows, std::min(m.rows, end * kPanelRows));
  });
}

}  // namespace mtad::ops::cpu
