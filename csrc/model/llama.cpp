#include "model/llama.h"

#include <ATen/ATen.h>

#include <cmath>

#include "ops/activations.h"
#include "ops/fused.h"
#include "ops/linear.h"
#include "ops/norms.h"
#include "ops/rope.h"
#include "ops/tree_attention.h"

namespace mtad {

at::Tensor rope_inv_freq(const ModelConfig& c, at::Device device) {
  // The same float32 tensor arithmetic as the reference, so the angles match bit for bit.
  const int64_t dim = c.head_dim;
  at::Tensor exps = at::arange(0, dim, 2, at::kLong).to(at::kFloat) / static_cast<double>(dim);
  at::Tensor inv = at::reciprocal(at::pow(c.rope.theta, exps));
  if (c.rope.type == "llama3") {
    const double factor = c.rope.factor, lo = c.rope.low_freq_factor, hi = c.rope.high_freq_factor;
    const double old_len = static_cast<double>(c.rope.original_max_position);
    const double low_wavelen = old_len / lo, high_wavelen = old_len / hi;
    at::Tensor wavelen = 2 * M_PI / inv;
    at::Tensor scaled = at::where(wavelen > low_wavelen, inv / factor, inv);
    at::Tensor smooth = (old_len / wavelen - lo) / (hi - lo);
    at::Tensor smoothed = (1 - smooth) * scaled / factor + smooth * scaled;
    at::Tensor medium = at::logical_not(wavelen < high_wavelen).logical_and(at::logical_not(wavelen > low_wavelen));
    inv = at::where(medium, smoothed, scaled);
  }
  return inv.to(device).contiguous();
}

LlamaModel::LlamaModel(const ModelConfig& c, WeightLoader& w, at::Device device, at::ScalarType dtype,
                       at::ScalarType weight_dtype)
    : Model(c, device, dtype, weight_dtype) {
  const int64_t H = c.hidden_size, F = c.intermediate_size, V = c.vocab_size;
  const int64_t QD = c.num_heads * c.head_dim, KD = c.num_kv_heads * c.head_dim;
  // q and k in panels of rotated row pairs: RoPE is their matrix kernel's epilogue.
  const ops::cpu::Packing rope{ops::cpu::Layout::kRopePanels, c.head_dim};
  embed_ = w.take_matrix("model.embed_tokens.weight", {V, H});
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    Layer L;
    L.attn_norm = w.take(p + "input_layernorm.weight", {H});
    L.wq = w.take_matrix(p + "self_attn.q_proj.weight", {QD, H}, rope);
    L.wk = w.take_matrix(p + "self_attn.k_proj.weight", {KD, H}, rope);
    L.wv = w.take_matrix(p + "self_attn.v_proj.weight", {KD, H});
    L.wo = w.take_matrix(p + "self_attn.o_proj.weight", {H, QD});
    if (c.attention_bias) {
      L.bq = w.take(p + "self_attn.q_proj.bias", {QD});
      L.bk = w.take(p + "self_attn.k_proj.bias", {KD});
      L.bv = w.take(p + "self_attn.v_proj.bias", {KD});
      L.bo = w.take(p + "self_attn.o_proj.bias", {H});
    }
    L.mlp_norm = w.take(p + "post_attention_layernorm.weight", {H});
    L.w_gate = w.take_matrix(p + "mlp.gate_proj.weight", {F, H});
    L.w_up = w.take_matrix(p + "mlp.up_proj.weight", {F, H});
    L.w_down = w.take_matrix(p + "mlp.down_proj.weight", {H, F});
    if (c.mlp_bias) {
      L.b_gate = w.take(p + "mlp.gate_proj.bias", {F});
      L.b_up = w.take(p + "mlp.up_proj.bias", {F});
      L.b_down = w.take(p + "mlp.down_proj.bias", {H});
    }
    w.ignore(p + "self_attn.rotary_emb.inv_freq");  // a buffer some old checkpoints saved
    layers_.push_back(std::move(L));
  }
  final_norm_ = w.take("model.norm.weight", {H});
  if (c.tie_word_embeddings) {
    lm_head_ = embed_;
    w.ignore("lm_head.weight");  // some checkpoints store the tied copy as well
  } else {
    lm_head_ = w.take_matrix("lm_head.weight", {V, H});
  }
  inv_freq_ = rope_inv_freq(c, device);
  if (device.is_cpu()) {
    using ops::cpu::mat_of;
    cpu_stack_ = CpuStack{H, c.num_heads, c.num_kv_heads, c.head_dim, F, /*rope=*/true, /*post_norm=*/false, {}};
    const float eps = static_cast<float>(c.rms_norm_eps);
    for (const Layer& L : layers_) {
      CpuBlock b;
      b.attn_norm = CpuNorm{CpuNorm::kRms, L.attn_norm.data_ptr<float>(), nullptr, eps};
      b.mlp_norm = CpuNorm{CpuNorm::kRms, L.mlp_norm.data_ptr<float>(), nullptr, eps};
      b.q = mat_of(L.wq, L.bq, QD, rope);
      b.k = mat_of(L.wk, L.bk, KD, rope);
      b.v = mat_of(L.wv, L.bv, KD);
      b.o = mat_of(L.wo, L.bo, H);
      b.gate = mat_of(L.w_gate, L.b_gate, F);
      b.up = mat_of(L.w_up, L.b_up, F);
      b.down = mat_of(L.w_down, L.b_down, H);
      cpu_stack_.blocks.push_back(b);
    }
  }
}

const float* LlamaModel::hidden_states_cpu(KVCache& cache, const CpuInputs& in, CpuScratch& sc) {
  const auto& c = config_;
  const int64_t T = in.T, H = c.hidden_size, half = c.head_dim / 2;
  float* x = sc.floats(CpuScratch::kResidual, T * H);
  ops::cpu::gather_rows(ops::cpu::mat_of(embed_, at::Tensor(), c.vocab_size), in.tokens, T, x);
  CpuStep st = cpu_step(cache, x, T, in.M, in.mask, c.head_dim);
  float* cs = sc.floats(CpuScratch::kRopeCos, T * half);
  float* sn = sc.floats(CpuScratch::kRopeSin, T * half);
  ops::cpu::rope_tables(in.positions, inv_freq_.data_ptr<float>(), T, half, cs, sn);
  st.rope_cos = cs;
  st.rope_sin = sn;
  run_stack_cpu(cpu_stack_, st, sc);
  float* out = sc.floats(CpuScratch::kHidden, T * H);
  ops::cpu::rms_norm_f32(x, final_norm_.data_ptr<float>(), out, T, H, static_cast<float>(c.rms_norm_eps));
  return out;
}

at::Tensor LlamaModel::hidden_states(KVCache& cache, const at::Tensor& tokens, const at::Tensor& positions,
                                     const at::Tensor& tree_mask) {
  const auto& c = config_;
  const int64_t T = tokens.size(0), start = cache.length;
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
  // Slots before `visible` are seen by every new token; the mask rules the rest.
  const int64_t visible = start + T - (tree_mask.defined() ? tree_mask.size(1) : T);
  at::Tensor x = embed_.index_select(0, tokens).to(dtype_);
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const Layer& L = layers_[l];
    at::Tensor h = ops::rms_norm(x, L.attn_norm, c.rms_norm_eps);
    at::Tensor q = ops::linear(h, L.wq, L.bq).view({T, c.num_heads, c.head_dim});
    at::Tensor k = ops::linear(h, L.wk, L.bk).view({T, c.num_kv_heads, c.head_dim});
    at::Tensor v = ops::linear(h, L.wv, L.bv).view({T, c.num_kv_heads, c.head_dim});
    ops::rope_(q, positions, inv_freq_);
    ops::rope_(k, positions, inv_freq_);
    at::Tensor kc = cache.k[l], vc = cache.v[l];
    kc.narrow(0, start, T).copy_(k);
    vc.narrow(0, start, T).copy_(v);
    at::Tensor a = ops::tree_attention(q, kc, vc, visible, tree_mask, scale);
    x.add_(ops::linear(a, L.wo, L.bo));
    h = ops::rms_norm(x, L.mlp_norm, c.rms_norm_eps);
    at::Tensor g = ops::silu_mul(ops::linear(h, L.w_gate, L.b_gate), ops::linear(h, L.w_up, L.b_up));
    x.add_(ops::linear(g, L.w_down, L.b_down));
  }
  return ops::rms_norm(x, final_norm_, c.rms_norm_eps);
}

}  // namespace mtad
