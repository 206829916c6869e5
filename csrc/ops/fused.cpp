#include "ops/fused.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <vector>

#include "ops/activations.h"
#include "ops/cpu/simd.h"
#include "ops/dispatch.h"
#include "ops/rope.h"

namespace mtad::ops {
namespace {

// The checks of ops::linear for one weight matrix (and bias) against x [T, K].
void check_matrix(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, const char* op) {
  check_float(w, op, "w");
  TORCH_CHECK(w.dim() == 2, op, ": weights must be [N, K]");
  TORCH_CHECK(x.size(1) == w.size(1), op, ": x has ", x.size(1), " columns but a weight matrix has ", w.size(1));
  TORCH_CHECK(w.device() == x.device(), op, ": a weight matrix is on ", w.device(), " but x is on ", x.device());
  TORCH_CHECK(w.is_contiguous(), op, ": weights must be contiguous");
  const bool mixed = cpu_f32(x) && w.scalar_type() != at::kFloat;
  TORCH_CHECK(mixed || w.scalar_type() == x.scalar_type(), op, ": a weight matrix has dtype ", w.scalar_type(),
              " but x has ", x.scalar_type());
  if (b.defined()) {
    check_like(b, x, op, "bias");
    TORCH_CHECK(b.dim() == 1 && b.size(0) == w.size(0), op, ": a bias must be [", w.size(0), "]");
  }
}

void check_x(const at::Tensor& x, const char* op) {
  check_float(x, op, "x");
  TORCH_CHECK(x.dim() == 2, op, ": x must be [T, K]");
}

// Runs f(begin, end) over [0, n) in one parallel region; `work` multiply-adds per item.
template <class F>
void parallel_units(int64_t n, int64_t work, F&& f) {
  at::parallel_for(0, n, std::max<int64_t>(16, cpu::grain_for(work)), f);
}

}  // namespace

void linear_add_(at::Tensor& y, const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  check_x(x, "linear_add_");
  check_matrix(x, w, b, "linear_add_");
  check_like(y, x, "linear_add_", "y");
  TORCH_CHECK(y.dim() == 2 && y.size(0) == x.size(0) && y.size(1) == w.size(0), "linear_add_: y must be [",
              x.size(0), ", ", w.size(0), "]");
  if (cpu_f32(x)) {
    at::Tensor xc = x.contiguous();
    const int64_t T = x.size(0), N = w.size(0);
    float* yp = y.data_ptr<float>();
    cpu::matvec(xc.data_ptr<float>(), T, cpu::mat_of(w, b), cpu::Epilogue::kAdd, yp, N, yp, N);
    return;
  }
  y.add_(ops::linear(x, w, b));
}

at::Tensor gate_up_silu(const at::Tensor& x, const at::Tensor& w_gate, const at::Tensor& w_up,
                        const at::Tensor& b_gate, const at::Tensor& b_up) {
  check_x(x, "gate_up_silu");
  check_matrix(x, w_gate, b_gate, "gate_up_silu");
  check_matrix(x, w_up, b_up, "gate_up_silu");
  TORCH_CHECK(w_gate.sizes() == w_up.sizes() && w_gate.scalar_type() == w_up.scalar_type(),
              "gate_up_silu: w_gate and w_up differ in shape or dtype");
  if (cpu_f32(x)) {
    at::Tensor xc = x.contiguous();
    const int64_t T = x.size(0), N = w_gate.size(0), K = x.size(1);
    at::Tensor out = at::empty({T, N}, x.options());
    const cpu::Mat g = cpu::mat_of(w_gate, b_gate), u = cpu::mat_of(w_up, b_up);
    parallel_units(N, 2 * K * T, [&](int64_t n0, int64_t n1) {
      cpu::gate_up_rows(xc.data_ptr<float>(), T, g, u, out.data_ptr<float>(), n0, n1);
    });
    return out;
  }
  return ops::silu_mul(ops::linear(x, w_gate, b_gate), ops::linear(x, w_up, b_up));
}

at::Tensor linear_relu(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  check_x(x, "linear_relu");
  check_matrix(x, w, b, "linear_relu");
  if (cpu_f32(x)) {
    at::Tensor xc = x.contiguous();
    const int64_t T = x.size(0), N = w.size(0);
    at::Tensor y = at::empty({T, N}, x.options());
    cpu::matvec(xc.data_ptr<float>(), T, cpu::mat_of(w, b), cpu::Epilogue::kRelu, y.data_ptr<float>(), N, nullptr,
                0);
    return y;
  }
  at::Tensor y = ops::linear(x, w, b);
  ops::relu_(y);
  return y;
}

at::Tensor qkv_rope(const at::Tensor& x, const at::Tensor& wq, const at::Tensor& wk, const at::Tensor& wv,
                    const at::Tensor& bq, const at::Tensor& bk, const at::Tensor& bv, const at::Tensor& positions,
                    const at::Tensor& inv_freq, at::Tensor& k_out, at::Tensor& v_out) {
  check_x(x, "qkv_rope");
  check_matrix(x, wq, bq, "qkv_rope");
  check_matrix(x, wk, bk, "qkv_rope");
  check_matrix(x, wv, bv, "qkv_rope");
  check_like(k_out, x, "qkv_rope", "k_out");
  check_like(v_out, x, "qkv_rope", "v_out");
  const int64_t T = x.size(0), K = x.size(1);
  TORCH_CHECK(k_out.dim() == 3 && k_out.size(0) == T && k_out.sizes() == v_out.sizes() &&
                  k_out.size(1) * k_out.size(2) == wk.size(0) && wk.sizes() == wv.sizes(),
              "qkv_rope: k_out and v_out must be [T, KVH, D] with KVH * D = the rows of wk and wv");
  const int64_t D = k_out.size(2);
  TORCH_CHECK(wq.size(0) % D == 0, "qkv_rope: wq's ", wq.size(0), " rows are not whole heads of ", D);
  const bool rope = inv_freq.defined();
  if (rope) {
    TORCH_CHECK(D % 2 == 0, "qkv_rope: head dim must be even");
    TORCH_CHECK(positions.scalar_type() == at::kLong && positions.dim() == 1 && positions.size(0) == T &&
                    positions.device() == x.device() && positions.is_contiguous(),
                "qkv_rope: positions must be int64 [T] on the device of x");
    TORCH_CHECK(inv_freq.scalar_type() == at::kFloat && inv_freq.numel() == D / 2 &&
                    inv_freq.device() == x.device() && inv_freq.is_contiguous(),
                "qkv_rope: inv_freq must be float32 [D/2] on the device of x");
  }
  const int64_t H = wq.size(0) / D;
  if (cpu_f32(x)) {
    at::Tensor xc = x.contiguous();
    at::Tensor q = at::empty({T, H, D}, x.options());
    std::vector<float> cs, sn;
    if (rope) {
      cs.resize(T * D / 2);
      sn.resize(T * D / 2);
      cpu::rope_tables(positions.data_ptr<int64_t>(), inv_freq.data_ptr<float>(), T, D / 2, cs.data(), sn.data());
    }
    const float* c = rope ? cs.data() : nullptr;
    const float* s = rope ? sn.data() : nullptr;
    const cpu::Mat mq = cpu::mat_of(wq, bq), mk = cpu::mat_of(wk, bk), mv = cpu::mat_of(wv, bv);
    const int64_t uq = cpu::proj_units(mq, rope), uk = cpu::proj_units(mk, rope), uv = cpu::proj_units(mv, false);
    // One region for the three projections: units of q, then k, then v.
    parallel_units(uq + uk + uv, 2 * K * T, [&](int64_t begin, int64_t end) {
      auto run = [&](const cpu::Mat& m, int64_t off, int64_t n, const float* rc, const float* rs, float* y) {
        const int64_t u0 = std::max(begin - off, int64_t(0)), u1 = std::min(end - off, n);
        if (u0 < u1) cpu::proj_rows(xc.data_ptr<float>(), T, m, D, rc, rs, y, m.rows, u0, u1);
      };
      run(mq, 0, uq, c, s, q.data_ptr<float>());
      run(mk, uq, uk, c, s, k_out.data_ptr<float>());
      run(mv, uq + uk, uv, nullptr, nullptr, v_out.data_ptr<float>());
    });
    return q;
  }
  at::Tensor q = ops::linear(x, wq, bq).view({T, H, D});
  at::Tensor k = ops::linear(x, wk, bk).view({T, -1, D});
  if (rope) {
    ops::rope_(q, positions, inv_freq);
    ops::rope_(k, positions, inv_freq);
  }
  k_out.copy_(k);
  v_out.copy_(ops::linear(x, wv, bv).view({T, -1, D}));
  return q;
}

}  // namespace mtad::ops
