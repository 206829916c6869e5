#include "mtad/model.h"

#include <ATen/ATen.h>

#include <filesystem>

#include "io/safetensors.h"
#include "model/llama.h"
#include "model/opt.h"
#include "mtad/errors.h"
#include "ops/linear.h"

namespace mtad {
namespace {

[[noreturn]] void bad(const std::string& what) { throw InputError("forward: " + what); }

at::ScalarType run_dtype(const LoadOptions& o, const at::Device& device, const WeightFolder& folder) {
  if (o.dtype == "float32") return at::kFloat;
  if (o.dtype == "float16") return at::kHalf;
  if (o.dtype == "bfloat16") return at::kBFloat16;
  if (o.dtype != "auto")
    throw InputError("dtype '" + o.dtype + "' is not one of auto, float32, float16, bfloat16");
  if (device.is_cpu()) return at::kFloat;
  // On a GPU keep a bfloat16 checkpoint in bfloat16; everything else runs in float16.
  for (const auto& name : folder.names())
    if (folder.info(name).dtype == "BF16") return at::kBFloat16;
  return at::kHalf;
}

}  // namespace

KVCache Model::new_cache(int64_t capacity) const {
  if (capacity <= 0) throw InputError("new_cache: capacity must be positive, got " + std::to_string(capacity));
  const auto& c = config_;
  auto opts = at::TensorOptions().dtype(dtype_).device(device_);
  KVCache cache;
  cache.k = at::zeros({c.num_layers, capacity, c.num_kv_heads, c.head_dim}, opts);
  cache.v = at::zeros({c.num_layers, capacity, c.num_kv_heads, c.head_dim}, opts);
  return cache;
}

at::Tensor Model::forward(KVCache& cache, const at::Tensor& tokens_in, const at::Tensor& positions_in,
                          const at::Tensor& tree_mask_in, const at::Tensor& logit_rows_in) {
  const auto& c = config_;
  if (!tokens_in.defined() || tokens_in.dim() != 1 || tokens_in.scalar_type() != at::kLong)
    bad("tokens must be a 1-D int64 tensor");
  const int64_t T = tokens_in.size(0);
  if (T == 0) bad("tokens is empty");
  if (!cache.k.defined() || cache.k.dim() != 4 || cache.k.size(0) != c.num_layers ||
      cache.k.size(2) != c.num_kv_heads || cache.k.size(3) != c.head_dim || cache.k.device() != device_ ||
      cache.k.scalar_type() != dtype_ || !cache.v.defined() || cache.v.sizes() != cache.k.sizes())
    bad("the cache was not made by this model (use model.new_cache)");
  if (cache.length + T > cache.capacity())
    bad(std::to_string(T) + " new tokens after " + std::to_string(cache.length) + " cached exceed the cache capacity " +
        std::to_string(cache.capacity()));

  at::Tensor tokens_cpu = tokens_in.to(at::kCPU);
  const int64_t lo = tokens_cpu.min().item<int64_t>(), hi = tokens_cpu.max().item<int64_t>();
  if (lo < 0 || hi >= c.vocab_size)
    bad("token id " + std::to_string(lo < 0 ? lo : hi) + " is outside the vocabulary [0, " +
        std::to_string(c.vocab_size) + ")");

  at::Tensor positions;
  if (positions_in.defined()) {
    if (positions_in.dim() != 1 || positions_in.size(0) != T || positions_in.scalar_type() != at::kLong)
      bad("positions must be an int64 tensor of the same length as tokens");
    positions = positions_in.to(device_).contiguous();
    at::Tensor pc = positions_in.to(at::kCPU);
    if (pc.min().item<int64_t>() < 0) bad("positions must be non-negative");
    if (c.arch == Arch::Opt && pc.max().item<int64_t>() >= c.max_position_embeddings)
      bad("position " + std::to_string(pc.max().item<int64_t>()) + " is beyond OPT's learned positions (" +
          std::to_string(c.max_position_embeddings) + ")");
  } else {
    if (c.arch == Arch::Opt && cache.length + T > c.max_position_embeddings)
      bad("positions up to " + std::to_string(cache.length + T - 1) + " are beyond OPT's learned positions (" +
          std::to_string(c.max_position_embeddings) + ")");
    positions = at::arange(cache.length, cache.length + T, at::TensorOptions().dtype(at::kLong).device(device_));
  }

  at::Tensor mask;
  if (tree_mask_in.defined()) {
    if (tree_mask_in.dim() != 2 || tree_mask_in.size(0) != T || tree_mask_in.size(1) < T ||
        tree_mask_in.size(1) > cache.length + T)
      bad("tree_mask must be [T, M] with T = " + std::to_string(T) + " and T <= M <= cache.length + T");
    mask = tree_mask_in.to(at::TensorOptions().dtype(at::kBool).device(device_)).contiguous();
    const int64_t M = mask.size(1);
    if (!mask.narrow(1, M - T, T).diagonal().all().item<bool>())
      bad("tree_mask must let every token attend to itself (diagonal of its last T columns true)");
  }

  at::Tensor rows;
  if (logit_rows_in.defined()) {
    if (logit_rows_in.dim() != 1 || logit_rows_in.scalar_type() != at::kLong)
      bad("logit_rows must be a 1-D int64 tensor");
    if (logit_rows_in.numel() > 0) {
      at::Tensor rc = logit_rows_in.to(at::kCPU);
      if (rc.min().item<int64_t>() < 0 || rc.max().item<int64_t>() >= T)
        bad("logit_rows must index the " + std::to_string(T) + " new tokens");
    }
    rows = logit_rows_in.to(device_);
  }

  at::Tensor h = hidden_states(cache, tokens_cpu.to(device_), positions, mask);
  cache.length += T;
  if (rows.defined()) h = h.index_select(0, rows);
  return ops::linear(h, lm_head(), at::Tensor()).to(at::kFloat);
}

std::unique_ptr<Model> load_model(const std::string& dir, const LoadOptions& options) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir)) throw FileNotFound(dir + ": no such model folder");
  ModelConfig config = load_config((fs::path(dir) / "config.json").string());
  at::Device device(at::kCPU);
  try {
    device = at::Device(options.device);
  } catch (const std::exception&) {
    throw InputError("device '" + options.device + "' is not a device name (cpu, cuda, cuda:N)");
  }
  if (!device.is_cpu() && !device.is_cuda())
    throw InputError("device '" + options.device + "': mtad runs on cpu and cuda");
  WeightFolder folder(dir);
  const at::ScalarType weight_dtype = run_dtype(options, device, folder);
  // The CPU computes in float32 whatever the matrices are stored in.
  const at::ScalarType dtype = device.is_cpu() ? at::kFloat : weight_dtype;
  WeightLoader loader(folder, device, dtype, weight_dtype, options.mmap);
  std::unique_ptr<Model> model;
  if (config.arch == Arch::Llama)
    model = std::make_unique<LlamaModel>(config, loader, device, dtype, weight_dtype);
  else
    model = std::make_unique<OptModel>(config, loader, device, dtype, weight_dtype);
  loader.finish();
  return model;
}

}  // namespace mtad
