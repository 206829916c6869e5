// The model interface every architecture implements, and the loader.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "mtad/config.h"
#include "mtad/kv_cache.h"

namespace mtad {

class CpuScratch;
class CpuScratchPool;

struct LoadOptions {
  std::string device = "cpu";  // "cpu" or "cuda[:N]"
  // On a GPU the run dtype: "auto" = the checkpoint's half type (else float16),
  // "float16", "bfloat16", "float32". On the CPU, compute is float32 and this is the
  // storage of the weight matrices: "auto"/"float32", or "float16"/"bfloat16", which
  // halve the bytes each decode step streams (widened to float32 in the kernels).
  std::string dtype = "auto";
  // CPU only. false (default): copy the weights into huge-page memory, which decodes
  // faster. true: use the file mapping directly where the dtype matches (no copy, the
  // page cache is shared between processes).
  bool mmap = false;
};

class Model {
 public:
  virtual ~Model();

  const ModelConfig& config() const { return config_; }
  at::Device device() const { return device_; }
  at::ScalarType dtype() const { return dtype_; }  // activations and KV cache
  at::ScalarType weight_dtype() const { return weight_dtype_; }  // weight matrices

  KVCache new_cache(int64_t capacity) const;

  // Runs T new tokens against `cache`.
  //   tokens:     int64 [T], each in [0, vocab_size)
  //   positions:  int64 [T], the position of each token (prefix length + depth for a tree)
  //   tree_mask:  bool [T, M] or undefined (causal). It rules the last M slots: the M - T
  //               newest cached slots (tree nodes of earlier calls) and then the T new
  //               tokens; row i says which of them token i attends to. Every slot before
  //               them, the committed prefix, is always attended. M = T: a tree of new tokens.
  //   logit_rows: int64 [R] or undefined; which of the T rows to return logits for.
  // Writes the new K/V at [cache.length, cache.length + T) and advances cache.length.
  // Returns float32 logits [R, vocab_size] (R = T when logit_rows is undefined).
  at::Tensor forward(KVCache& cache, const at::Tensor& tokens, const at::Tensor& positions,
                     const at::Tensor& tree_mask, const at::Tensor& logit_rows);
  // forward() for token ids that mtad's samplers made on the model's device (the decoders'
  // drafts): they are not read back to the host to be checked (no synchronisation), only
  // clamped into the vocabulary on the device (a sampler marks a row without mass -1; the
  // acceptance rule reports that); a bool tree_mask on the device (the decoder's, built
  // there from the beams' parents) is used unread too. On the CPU the same checks as forward().
  at::Tensor forward_sampled(KVCache& cache, const at::Tensor& tokens, const at::Tensor& positions,
                             const at::Tensor& tree_mask, const at::Tensor& logit_rows);

  // Seconds one forward over T new tokens takes behind a short cached prefix: the best of a
  // few timed runs, measured at the first call for each T and kept for the model's life
  // (the cost table of the automatic draft length, decode/draft_length.h). Thread-safe.
  double forward_seconds(int64_t T);
  // The table measured so far, and an entry given instead of measured (a table saved by an
  // earlier process on this machine: the Python driver's cost cache). seconds must be > 0.
  std::map<int64_t, double> forward_seconds_table();
  void set_forward_seconds(int64_t T, double seconds);

 protected:
  Model(ModelConfig config, at::Device device, at::ScalarType dtype, at::ScalarType weight_dtype);

  // Final hidden states [T, out_dim] of the validated inputs; cache layout checked. The
  // GPU path: one op (ops/*.h) after another on device tensors.
  virtual at::Tensor hidden_states(KVCache& cache, const at::Tensor& tokens, const at::Tensor& positions,
                                   const at::Tensor& tree_mask) = 0;
  // The CPU path, on raw pointers: validated tokens and positions [T], tree mask [T, M]
  // or null (causal, M = T). Returns the final hidden states [T, out_dim] in `scratch`
  // (model/cpu_forward.h): fused kernels in one parallel region, no ATen call, no allocation.
  struct CpuInputs {
    const int64_t* tokens;
    const int64_t* positions;
    const bool* mask;
    int64_t T, M;
  };
  virtual const float* hidden_states_cpu(KVCache& cache, const CpuInputs& in, CpuScratch& scratch) = 0;
  virtual const at::Tensor& lm_head() const = 0;

  ModelConfig config_;
  at::Device device_;
  at::ScalarType dtype_;
  at::ScalarType weight_dtype_;

 private:
  at::Tensor forward_impl(KVCache& cache, const at::Tensor& tokens, const at::Tensor& positions,
                          const at::Tensor& tree_mask, const at::Tensor& logit_rows, bool sampled);
  at::Tensor forward_cpu(KVCache& cache, const int64_t* tokens, const at::Tensor& positions, const at::Tensor& mask,
                         const at::Tensor& rows, int64_t T, int64_t M);
  std::unique_ptr<CpuScratchPool> scratch_;  // CPU forwards' buffers, reused
  std::map<int64_t, double> forward_seconds_;  // by T
  std::mutex forward_seconds_mutex_;
};

// Loads config.json and the safetensors weights of a Hugging Face model folder.
std::unique_ptr<Model> load_model(const std::string& dir, const LoadOptions& options = {});

}  // namespace mtad
