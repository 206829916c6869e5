// Llama: RMSNorm, RoPE (default / llama3), SwiGLU, grouped-query attention.
#pragma once

#include <vector>

#include "model/cpu_forward.h"
#include "model/weight_loader.h"
#include "mtad/model.h"

namespace mtad {

class LlamaModel final : public Model {
 public:
  LlamaModel(const ModelConfig& config, WeightLoader& w, at::Device device, at::ScalarType dtype,
             at::ScalarType weight_dtype);

 protected:
  at::Tensor hidden_states(KVCache& cache, const at::Tensor& tokens, const at::Tensor& positions,
                           const at::Tensor& tree_mask) override;
  const float* hidden_states_cpu(KVCache& cache, const CpuInputs& in, CpuScratch& scratch) override;
  const at::Tensor& lm_head() const override { return lm_head_; }

 private:
  struct Layer {
    at::Tensor attn_norm, wq, wk, wv, wo, bq, bk, bv, bo;
    at::Tensor mlp_norm, w_gate, w_up, w_down, b_gate, b_up, b_down;
  };
  at::Tensor embed_, final_norm_, lm_head_, inv_freq_;
  std::vector<Layer> layers_;
  CpuStack cpu_stack_;  // the same weights as raw pointers (CPU models)
};

// Rotary inverse frequencies [head_dim / 2] (float32), with llama3 scaling if configured.
at::Tensor rope_inv_freq(const ModelConfig& config, at::Device device);

}  // namespace mtad
