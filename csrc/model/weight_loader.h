// Takes a model's tensors out of a WeightFolder by name, checking shape and dtype and
// converting to the run dtype/device; finish() reports tensors nobody asked for.
#pragma once

#include <ATen/core/Tensor.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "model/weight_arena.h"
#include "ops/linear.h"

namespace mtad {

class WeightLoader {
 public:
  // mmap: on the CPU, hand out views of the file mapping where the dtype matches (no
  // copy); otherwise weights are copied into a huge-page arena (faster decoding).
  // dtype: norms, biases and tables added to activations; matrix_dtype: weight matrices
  // and embeddings (they may be half precision on the CPU while activations are float32).
  WeightLoader(const WeightFolder& folder, at::Device device, at::ScalarType dtype, at::ScalarType matrix_dtype,
               bool mmap);

  at::Tensor take(const std::string& name, const std::vector<int64_t>& shape) { return take_as(name, shape, dtype_); }
  // A weight matrix [N, K]. Copied into the arena (CPU, not mmap), it is laid out in
  // panels for the CPU kernels: [panels, K, panel_rows()] (ops/linear.h, pack_panels).
  at::Tensor take_matrix(const std::string& name, const std::vector<int64_t>& shape,
                         ops::cpu::Packing packing = {});
  // Undefined when the folder lacks the tensor.
  at::Tensor take_optional(const std::string& name, const std::vector<int64_t>& shape);
  // Accepts a tensor the model does not use (e.g. a tied lm_head copy).
  void ignore(const std::string& name) { used_.insert(name); }
  bool has(const std::string& name) const { return folder_.contains(name); }
  // Throws WeightError naming the unexpected tensors.
  void finish() const;

 private:
  const WeightFolder& folder_;
  at::Device device_;
  at::ScalarType dtype_;
  at::ScalarType matrix_dtype_;
  at::Tensor take_as(const std::string& name, const std::vector<int64_t>& shape, at::ScalarType dtype);
  // The file's tensor, its dtype and shape checked; marks it used.
  at::Tensor checked(const std::string& name, const std::vector<int64_t>& shape);
  std::set<std::string> used_;
  std::unique_ptr<WeightArena> arena_;
};

}  // namespace mtad
