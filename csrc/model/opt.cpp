#include "model/opt.h"

#include <ATen/ATen.h>

#include <cmath>

#include "ops/activations.h"
#include "ops/fused.h"
#include "ops/linear.h"
#include "ops/norms.h"
#include "ops/tree_attention.h"

namespace mtad {
namespace {

// OPT's learned position table has two extra leading rows (a historic padding offset).
constexpr int64_t kPositionOffset = 2;
constexpr double kEps = 1e-5;  // OPT's LayerNorms use torch's default epsilon

}  // namespace

OptModel::OptModel(const ModelConfig& c, WeightLoader& w, at::Device device, at::ScalarType dtype,
                   at::ScalarType weight_dtype)
    : Model(c, device, dtype, weight_dtype) {
  const int64_t H = c.hidden_size, F = c.intermediate_size, V = c.vocab_size, P = c.word_embed_proj_dim;
  // Hugging Face saves OPTForCausalLM as "model.decoder.*"; original checkpoints use "decoder.*".
  const std::string root = w.has("decoder.embed_tokens.weight") ? "decoder." : "model.decoder.";
  auto norm = [&](const std::string& name, at::Tensor& wt, at::Tensor& b) {
    if (!c.layer_norm_affine) return;
    wt = w.take(name + ".weight", {H});
    b = w.take(name + ".bias", {H});
  };
  auto bias = [&](const std::string& name, int64_t n) {
    return c.enable_bias ? w.take(name + ".bias", {n}) : at::Tensor();
  };
  embed_ = w.take_matrix(root + "embed_tokens.weight", {V, P});
  positions_ = w.take(root + "embed_positions.weight", {c.max_position_embeddings + kPositionOffset, H});
  if (P != H) {
    project_in_ = w.take_matrix(root + "project_in.weight", {H, P});
    project_out_ = w.take_matrix(root + "project_out.weight", {P, H});
  }
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const std::string p = root + "layers." + std::to_string(l) + ".";
    Layer L;
    norm(p + "self_attn_layer_norm", L.ln1_w, L.ln1_b);
    L.wq = w.take_matrix(p + "self_attn.q_proj.weight", {H, H});
    L.bq = bias(p + "self_attn.q_proj", H);
    L.wk = w.take_matrix(p + "self_attn.k_proj.weight", {H, H});
    L.bk = bias(p + "self_attn.k_proj", H);
    L.wv = w.take_matrix(p + "self_attn.v_proj.weight", {H, H});
    L.bv = bias(p + "self_attn.v_proj", H);
    L.wo = w.take_matrix(p + "self_attn.out_proj.weight", {H, H});
    L.bo = bias(p + "self_attn.out_proj", H);
    norm(p + "final_layer_norm", L.ln2_w, L.ln2_b);
    L.fc1 = w.take_matrix(p + "fc1.weight", {F, H});
    L.b1 = bias(p + "fc1", F);
    L.fc2 = w.take_matrix(p + "fc2.weight", {H, F});
    L.b2 = bias(p + "fc2", H);
    layers_.push_back(std::move(L));
  }
  if (c.final_layer_norm) norm(root + "final_layer_norm", final_w_, final_b_);
  if (c.tie_word_embeddings) {
    lm_head_ = embed_;
    w.ignore("lm_head.weight");
  } else {
    lm_head_ = w.take_matrix("lm_head.weight", {V, P});
  }
  if (device.is_cpu()) {
    using ops::cpu::mat_of;
    cpu_stack_ = CpuStack{H, c.num_heads, c.num_kv_heads, c.head_dim, F, /*rope=*/false, !c.do_layer_norm_before, {}};
    auto norm_of = [](const at::Tensor& wt, const at::Tensor& b) {
      return CpuNorm{CpuNorm::kLayer, wt.defined() ? wt.data_ptr<float>() : nullptr,
                     b.defined() ? b.data_ptr<float>() : nullptr, static_cast<float>(kEps)};
    };
    for (const Layer& L : layers_) {
      CpuBlock b;
      b.attn_norm = norm_of(L.ln1_w, L.ln1_b);
      b.mlp_norm = norm_of(L.ln2_w, L.ln2_b);
      b.q = mat_of(L.wq, L.bq, H);
      b.k = mat_of(L.wk, L.bk, H);
      b.v = mat_of(L.wv, L.bv, H);
      b.o = mat_of(L.wo, L.bo, H);
      b.up = mat_of(L.fc1, L.b1, F);  // gate stays empty: a ReLU MLP
      b.down = mat_of(L.fc2, L.b2, H);
      cpu_stack_.blocks.push_back(b);
    }
  }
}

const float* OptModel::hidden_states_cpu(KVCache& cache, const CpuInputs& in, CpuScratch& sc) {
  using namespace ops::cpu;
  const auto& c = config_;
  const int64_t T = in.T, H = c.hidden_size, P = c.word_embed_proj_dim;
  float* x = sc.floats(CpuScratch::kResidual, T * H);
  if (project_in_.defined()) {
    float* e = sc.floats(CpuScratch::kEmbed, T * P);
    gather_rows(mat_of(embed_, at::Tensor(), c.vocab_size), in.tokens, T, e);
    matvec(e, T, mat_of(project_in_, at::Tensor(), H), Epilogue::kStore, x, H, nullptr, 0);
  } else {
    gather_rows(mat_of(embed_, at::Tensor(), c.vocab_size), in.tokens, T, x);
  }
  const float* pos_table = positions_.data_ptr<float>();
  for (int64_t t = 0; t < T; ++t) {
    const float* p = pos_table + (in.positions[t] + kPositionOffset) * H;
    for (int64_t i = 0; i < H; ++i) x[t * H + i] += p[i];
  }
  CpuStep st = cpu_step(cache, x, T, in.M, in.mask, c.head_dim);
  run_stack_cpu(cpu_stack_, st, sc);
  const float* h = x;
  if (final_w_.defined() || (c.final_layer_norm && !c.layer_norm_affine)) {
    float* out = sc.floats(CpuScratch::kHidden, T * H);
    layer_norm_f32(x, final_w_.defined() ? final_w_.data_ptr<float>() : nullptr,
                   final_b_.defined() ? final_b_.data_ptr<float>() : nullptr, out, T, H, static_cast<float>(kEps));
    h = out;
  }
  if (project_out_.defined()) {
    float* out = sc.floats(CpuScratch::kProjected, T * P);
    matvec(h, T, mat_of(project_out_, at::Tensor(), P), Epilogue::kStore, out, P, nullptr, 0);
    h = out;
  }
  return h;
}

at::Tensor OptModel::hidden_states(KVCache& cache, const at::Tensor& tokens, const at::Tensor& positions,
                                   const at::Tensor& tree_mask) {
  const auto& c = config_;
  const int64_t T = tokens.size(0), start = cache.length;
  const double scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
  // Slots before `visible` are seen by every new token; the mask rules the rest.
  const int64_t visible = start + T - (tree_mask.defined() ? tree_mask.size(1) : T);
  at::Tensor x = embed_.index_select(0, tokens).to(dtype_);
  if (project_in_.defined()) x = ops::linear(x, project_in_, at::Tensor());
  x.add_(positions_.index_select(0, positions + kPositionOffset));
  const bool before = c.do_layer_norm_before;
  for (int64_t l = 0; l < c.num_layers; ++l) {
    const Layer& L = layers_[l];
    at::Tensor h = before ? ops::layer_norm(x, L.ln1_w, L.ln1_b, kEps) : x;
    at::Tensor q = ops::linear(h, L.wq, L.bq).view({T, c.num_heads, c.head_dim});
    at::Tensor k = ops::linear(h, L.wk, L.bk).view({T, c.num_kv_heads, c.head_dim});
    at::Tensor v = ops::linear(h, L.wv, L.bv).view({T, c.num_kv_heads, c.head_dim});
    at::Tensor kc = cache.k[l], vc = cache.v[l];
    kc.narrow(0, start, T).copy_(k);
    vc.narrow(0, start, T).copy_(v);
    at::Tensor a = ops::tree_attention(q, kc, vc, visible, tree_mask, scale);
    x.add_(ops::linear(a, L.wo, L.bo));
    if (!before) x = ops::layer_norm(x, L.ln1_w, L.ln1_b, kEps);
    h = before ? ops::layer_norm(x, L.ln2_w, L.ln2_b, kEps) : x;
    at::Tensor f = ops::linear(h, L.fc1, L.b1);
    ops::relu_(f);
    x.add_(ops::linear(f, L.fc2, L.b2));
    if (!before) x = ops::layer_norm(x, L.ln2_w, L.ln2_b, kEps);
  }
  if (final_w_.defined() || (c.final_layer_norm && !c.layer_norm_affine))
    x = ops::layer_norm(x, final_w_, final_b_, kEps);
  if (project_out_.defined()) x = ops::linear(x, project_out_, at::Tensor());
  return x;
}

}  // namespace mtad
