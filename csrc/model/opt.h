// OPT: learned positions (offset 2), LayerNorm before (125m layout) or after (350m
// layout) each block, ReLU, biases, project_in / project_out.
#pragma once

#include <vector>

#include "model/cpu_forward.h"
#include "model/weight_loader.h"
#include "mtad/model.h"

namespace mtad {

class OptModel final : public Model {
 public:
  OptModel(const ModelConfig& config, WeightLoader& w, at::Device device, at::ScalarType dtype,
           at::ScalarType weight_dtype);

 protected:
  at::Tensor hidden_states(KVCache& cache, const at::Tensor& tokens, const at::Tensor& positions,
                           const at::Tensor& tree_mask) override;
  const float* hidden_states_cpu(KVCache& cache, const CpuInputs& in, CpuScratch& scratch) override;
  const at::Tensor& lm_head() const override { return lm_head_; }

 private:
  struct Layer {
    at::Tensor ln1_w, ln1_b, wq, bq, wk, bk, wv, bv, wo, bo;
    at::Tensor ln2_w, ln2_b, fc1, b1, fc2, b2;
  };
  at::Tensor embed_, positions_, project_in_, project_out_, final_w_, final_b_, lm_head_;
  std::vector<Layer> layers_;
  CpuStack cpu_stack_;  // the same weights as raw pointers (CPU models)
};

}  // namespace mtad
