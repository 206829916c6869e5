#include "ops/linear.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "ops/cpu/panels.h"
#include "ops/dispatch.h"

namespace mtad::ops {

namespace cpu {
Mat mat_of(const at::Tensor& w, const at::Tensor& b, int64_t rows, Packing packing) {
  Mat m;
  m.w = w.data_ptr();
  m.type = w.scalar_type() == at::kFloat ? WType::F32 : w.scalar_type() == at::kHalf ? WType::F16 : WType::BF16;
  m.bias = b.defined() ? b.data_ptr<float>() : nullptr;
  if (w.dim() == 3) {
    TORCH_CHECK(rows >= 0 && panel_count(rows, packing.layout) == w.size(0) && w.size(2) == kPanelRows,
                "mat_of: a panel tensor [", w.size(0), ", ", w.size(1), ", ", w.size(2), "] does not hold ", rows,
                " rows");
    m.rows = rows;
    m.cols = w.size(1);
    m.layout = packing.layout;
    m.head_dim = packing.head_dim;
    return m;
  }
  m.rows = w.size(0);
  m.cols = w.size(1);
  TORCH_CHECK(rows < 0 || rows == m.rows, "mat_of: expected ", rows, " rows, the tensor has ", m.rows);
  return m;
}

int64_t panel_rows() { return kPanelRows; }

int64_t panel_count(int64_t rows, Layout layout) {
  constexpr int64_t kPairs = kPanelRows / 2;
  return layout == Layout::kRopePanels ? (rows / 2 + kPairs - 1) / kPairs : (rows + kPanelRows - 1) / kPanelRows;
}

namespace {

// Source row of lane `j` of panel `p` (-1: padding).
int64_t panel_row(int64_t p, int64_t j, int64_t rows, const Packing& k) {
  if (k.layout != Layout::kRopePanels) {
    const int64_t r = p * kPanelRows + j;
    return r < rows ? r : -1;
  }
  constexpr int64_t kPairs = kPanelRows / 2;
  const int64_t half = k.head_dim / 2, u = p * kPairs + j % kPairs;
  if (u >= rows / 2) return -1;
  return (u / half) * k.head_dim + u % half + (j >= kPairs ? half : 0);
}

template <class E>
void pack_typed(const E* src, int64_t N, int64_t K, const Packing& k, E* dst, int64_t panels) {
  // Panels are independent: threads share them (loading a model is mostly this copy).
  at::parallel_for(0, panels, 16, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p)
      for (int64_t j = 0; j < kPanelRows; ++j) {
        const int64_t r = panel_row(p, j, N, k);
        E* out = dst + p * K * kPanelRows + j;
        for (int64_t c = 0; c < K; ++c) out[c * kPanelRows] = r < 0 ? E(0) : src[r * K + c];
      }
  });
}

}  // namespace

void pack_panels(const at::Tensor& w, Packing packing, at::Tensor& out) {
  TORCH_CHECK(w.dim() == 2 && w.device().is_cpu() && w.is_contiguous(), "pack_panels: w must be a contiguous CPU [N, K]");
  TORCH_CHECK(packing.layout != Layout::kRows, "pack_panels: a panel layout is needed");
  const int64_t N = w.size(0), K = w.size(1), P = panel_count(N, packing.layout);
  if (packing.layout == Layout::kRopePanels)
    TORCH_CHECK(packing.head_dim > 0 && packing.head_dim % 2 == 0 && N % packing.head_dim == 0,
                "pack_panels: ", N, " rows are not whole heads of even size ", packing.head_dim);
  TORCH_CHECK(out.is_contiguous() && out.scalar_type() == w.scalar_type() && out.dim() == 3 && out.size(0) == P &&
                  out.size(1) == K && out.size(2) == kPanelRows,
              "pack_panels: out must be a contiguous [", P, ", ", K, ", ", kPanelRows, "] tensor of w's dtype");
  if (w.element_size() == 4)
    pack_typed(static_cast<const uint32_t*>(w.data_ptr()), N, K, packing, static_cast<uint32_t*>(out.data_ptr()), P);
  else
    pack_typed(static_cast<const uint16_t*>(w.data_ptr()), N, K, packing, static_cast<uint16_t*>(out.data_ptr()), P);
}


}  // namespace cpu

at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  check_float(x, "linear", "x");
  check_float(w, "linear", "w");
  TORCH_CHECK(x.dim() == 2 && w.dim() == 2, "linear: x must be [T, K] and w [N, K]");
  TORCH_CHECK(x.size(1) == w.size(1), "linear: x has ", x.size(1), " columns but w has ", w.size(1));
  TORCH_CHECK(w.device() == x.device(), "linear: w is on ", w.device(), " but x is on ", x.device());
  TORCH_CHECK(w.is_contiguous(), "linear: w must be contiguous");
  const bool mixed = x.device().is_cpu() && x.scalar_type() == at::kFloat && w.scalar_type() != at::kFloat;
  TORCH_CHECK(mixed || w.scalar_type() == x.scalar_type(), "linear: w has dtype ", w.scalar_type(),
              " but x has ", x.scalar_type());
  if (b.defined()) {
    check_like(b, x, "linear", "b");
    TORCH_CHECK(b.dim() == 1 && b.size(0) == w.size(0), "linear: b must be [", w.size(0), "]");
  }
  const int64_t T = x.size(0), N = w.size(0);
  if (x.device().is_cpu() && x.scalar_type() == at::kFloat) {
    at::Tensor xc = x.contiguous();
    at::Tensor y = at::empty({T, N}, x.options());
    cpu::matvec(xc.data_ptr<float>(), T, cpu::mat_of(w, b), cpu::Epilogue::kStore, y.data_ptr<float>(), N, nullptr,
                0);
    return y;
  }
  // GPU: cuBLAS.
  return b.defined() ? at::addmm(b, x, w.t()) : at::mm(x, w.t());
}

}  // namespace mtad::ops
