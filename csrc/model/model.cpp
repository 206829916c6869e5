#include "mtad/model.h"

#include <ATen/ATen.h>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <utility>

#include "io/safetensors.h"
#include "model/cpu_forward.h"
#include "model/llama.h"
#include "model/opt.h"
#include "mtad/errors.h"
#include "ops/linear.h"
#include "ops/to_host.h"

namespace mtad {
namespace {

[[noreturn]] void bad(const std::string& what) { throw InputError("forward: " + what); }

// t itself when it is a contiguous CPU tensor (no ATen call), else a contiguous CPU copy.
at::Tensor on_cpu(const at::Tensor& t) {
  if (t.is_cpu()) return t.is_contiguous() ? t : t.contiguous();
  return ops::to_host(t);  // a device input: checked on a (counted) host copy
}

std::pair<int64_t, int64_t> min_max(const int64_t* p, int64_t n) {
  int64_t lo = p[0], hi = p[0];
  for (int64_t i = 1; i < n; ++i) {
    lo = std::min(lo, p[i]);
    hi = std::max(hi, p[i]);
  }
  return {lo, hi};
}

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
  // A capacity whose cache cannot be sized or allocated is the caller's error: name it
  // rather than surface torch's overflow or allocator message alone.
  const int64_t per_token = 2 * c.num_layers * c.num_kv_heads * c.head_dim * int64_t(at::elementSize(dtype_));
  if (capacity > std::numeric_limits<int64_t>::max() / per_token)
    throw InputError("new_cache: capacity " + std::to_string(capacity) + " is too large (" +
                     std::to_string(per_token) + " bytes per token)");
  // On the CPU a cache larger than the machine's memory is refused by name: zeroing it would
  // wake the OOM killer rather than fail an allocation (Linux overcommits).
  if (device_.is_cpu()) {
    const double bytes = double(capacity) * double(per_token);  // k and v
    const double ram = double(sysconf(_SC_PHYS_PAGES)) * double(sysconf(_SC_PAGESIZE));
    if (ram > 0 && bytes > ram) {
      char msg[160];
      std::snprintf(msg, sizeof msg, "new_cache: a cache of %lld tokens needs %.1f GiB, more than this machine's "
                    "memory (%.1f GiB)", static_cast<long long>(capacity), bytes / double(1 << 30),
                    ram / double(1 << 30));
      throw InputError(msg);
    }
  }
  KVCache cache;
  try {
    cache.k = at::zeros({c.num_layers, capacity, c.num_kv_heads, c.head_dim}, opts);
    cache.v = at::zeros({c.num_layers, capacity, c.num_kv_heads, c.head_dim}, opts);
  } catch (const c10::Error& e) {
    throw InputError("new_cache: cannot allocate a cache of " + std::to_string(capacity) + " tokens (" +
                     std::to_string(capacity * per_token) + " bytes): " + e.what_without_backtrace());
  }
  return cache;
}

Model::Model(ModelConfig config, at::Device device, at::ScalarType dtype, at::ScalarType weight_dtype)
    : config_(std::move(config)),
      device_(device),
      dtype_(dtype),
      weight_dtype_(weight_dtype),
      scratch_(std::make_unique<CpuScratchPool>()) {}

Model::~Model() = default;

at::Tensor Model::forward(KVCache& cache, const at::Tensor& tokens, const at::Tensor& positions,
                          const at::Tensor& tree_mask, const at::Tensor& logit_rows) {
  return forward_impl(cache, tokens, positions, tree_mask, logit_rows, false);
}

at::Tensor Model::forward_sampled(KVCache& cache, const at::Tensor& tokens, const at::Tensor& positions,
                                  const at::Tensor& tree_mask, const at::Tensor& logit_rows) {
  return forward_impl(cache, tokens, positions, tree_mask, logit_rows, true);
}

at::Tensor Model::forward_impl(KVCache& cache, const at::Tensor& tokens_in, const at::Tensor& positions_in,
                               const at::Tensor& tree_mask_in, const at::Tensor& logit_rows_in, bool sampled) {
  const auto& c = config_;
  if (!tokens_in.defined() || tokens_in.dim() != 1 || tokens_in.scalar_type() != at::kLong)
    bad("tokens must be a 1-D int64 tensor");
  const int64_t T = tokens_in.size(0);
  if (T == 0) bad("tokens is empty");
  if (!cache.k.defined() || cache.k.dim() != 4 || cache.k.size(0) != c.num_layers ||
      cache.k.size(2) != c.num_kv_heads || cache.k.size(3) != c.head_dim || cache.k.device() != device_ ||
      cache.k.scalar_type() != dtype_ || !cache.v.defined() || cache.v.sizes() != cache.k.sizes() ||
      cache.v.device() != device_ || cache.v.scalar_type() != dtype_ || !cache.k.is_contiguous() ||
      !cache.v.is_contiguous())
    bad("the cache was not made by this model (use model.new_cache)");
  if (cache.length + T > cache.capacity())
    bad(std::to_string(T) + " new tokens after " + std::to_string(cache.length) + " cached exceed the cache capacity " +
        std::to_string(cache.capacity()));

  // The inputs are checked on CPU copies (no copy, and no ATen call, when they are CPU
  // tensors already: the usual case, and every CPU decode step).
  // Sampled tokens on the device stay there (forward_sampled).
  const bool device_tokens = sampled && !tokens_in.is_cpu();
  if (device_tokens && tokens_in.device() != device_)
    bad("sampled tokens are on " + tokens_in.device().str() + ", the model on " + device_.str());
  const at::Tensor tokens_cpu = device_tokens ? at::Tensor() : on_cpu(tokens_in);
  const int64_t* tok = device_tokens ? nullptr : tokens_cpu.data_ptr<int64_t>();
  if (!device_tokens) {
    const auto [lo, hi] = min_max(tok, T);
    if (lo < 0 || hi >= c.vocab_size)
      bad("token id " + std::to_string(lo < 0 ? lo : hi) + " is outside the vocabulary [0, " +
          std::to_string(c.vocab_size) + ")");
  }

  at::Tensor positions_cpu;
  if (positions_in.defined()) {
    if (positions_in.dim() != 1 || positions_in.size(0) != T || positions_in.scalar_type() != at::kLong)
      bad("positions must be an int64 tensor of the same length as tokens");
    positions_cpu = on_cpu(positions_in);
    const auto [plo, phi] = min_max(positions_cpu.data_ptr<int64_t>(), T);
    if (plo < 0) bad("positions must be non-negative");
    if (c.arch == Arch::Opt && phi >= c.max_position_embeddings)
      bad("position " + std::to_string(phi) + " is beyond OPT's learned positions (" +
          std::to_string(c.max_position_embeddings) + ")");
  } else if (c.arch == Arch::Opt && cache.length + T > c.max_position_embeddings) {
    bad("positions up to " + std::to_string(cache.length + T - 1) + " are beyond OPT's learned positions (" +
        std::to_string(c.max_position_embeddings) + ")");
  }

  at::Tensor mask_cpu, mask_device;
  int64_t M = T;
  if (tree_mask_in.defined()) {
    if (tree_mask_in.dim() != 2 || tree_mask_in.size(0) != T || tree_mask_in.size(1) < T ||
        tree_mask_in.size(1) > cache.length + T)
      bad("tree_mask must be [T, M] with T = " + std::to_string(T) + " and T <= M <= cache.length + T");
  }
  if (tree_mask_in.defined() && sampled && !tree_mask_in.is_cpu()) {
    // A sampled tree's mask, made on the device by the decoder (each row its node's ancestors
    // and itself): used as it is, not read back.
    if (tree_mask_in.device() != device_ || tree_mask_in.scalar_type() != at::kBool)
      bad("a sampled tree's mask must be bool on " + device_.str());
    mask_device = tree_mask_in.contiguous();
    M = mask_device.size(1);
  } else if (tree_mask_in.defined()) {
    mask_cpu = tree_mask_in.scalar_type() == at::kBool ? on_cpu(tree_mask_in)
                                                        : on_cpu(tree_mask_in).to(at::kBool).contiguous();
    M = mask_cpu.size(1);
    const bool* m = mask_cpu.data_ptr<bool>();
    for (int64_t i = 0; i < T; ++i)
      if (!m[i * M + M - T + i])
        bad("tree_mask must let every token attend to itself (diagonal of its last T columns true)");
  }

  at::Tensor rows_cpu;
  if (logit_rows_in.defined()) {
    if (logit_rows_in.dim() != 1 || logit_rows_in.scalar_type() != at::kLong)
      bad("logit_rows must be a 1-D int64 tensor");
    rows_cpu = on_cpu(logit_rows_in);
    if (rows_cpu.numel() > 0) {
      const auto [rlo, rhi] = min_max(rows_cpu.data_ptr<int64_t>(), rows_cpu.numel());
      if (rlo < 0 || rhi >= T) bad("logit_rows must index the " + std::to_string(T) + " new tokens");
    }
  }

  if (device_.is_cpu()) return forward_cpu(cache, tok, positions_cpu, mask_cpu, rows_cpu, T, M);

  at::Tensor positions =
      positions_cpu.defined()
          ? positions_cpu.to(device_)
          : at::arange(cache.length, cache.length + T, at::TensorOptions().dtype(at::kLong).device(device_));
  at::Tensor mask = mask_device.defined() ? mask_device : mask_cpu.defined() ? mask_cpu.to(device_) : at::Tensor();
  const at::Tensor ids = device_tokens ? tokens_in.clamp(0, c.vocab_size - 1) : tokens_cpu.to(device_);
  at::Tensor h = hidden_states(cache, ids, positions, mask);
  cache.length += T;
  if (rows_cpu.defined()) h = h.index_select(0, rows_cpu.to(device_));
  return ops::linear(h, lm_head(), at::Tensor()).to(at::kFloat);
}

at::Tensor Model::forward_cpu(KVCache& cache, const int64_t* tokens, const at::Tensor& positions_in,
                              const at::Tensor& mask, const at::Tensor& rows, int64_t T, int64_t M) {
  const CpuScratchPool::Lease lease = scratch_->acquire();
  CpuScratch& scratch = *lease;
  const int64_t* positions;
  if (positions_in.defined()) {
    positions = positions_in.data_ptr<int64_t>();
  } else {
    int64_t* p = scratch.ints(CpuScratch::kPositions, T);
    for (int64_t t = 0; t < T; ++t) p[t] = cache.length + t;
    positions = p;
  }
  const CpuInputs in{tokens, positions, mask.defined() ? mask.data_ptr<bool>() : nullptr, T, M};
  const float* h = hidden_states_cpu(cache, in, scratch);
  cache.length += T;

  const at::Tensor& head = lm_head();
  const int64_t V = config_.vocab_size, P = head.size(1);
  int64_t R = T;
  if (rows.defined()) {
    R = rows.numel();
    float* sel = scratch.floats(CpuScratch::kRows, R * P);
    const int64_t* r = rows.data_ptr<int64_t>();
    for (int64_t i = 0; i < R; ++i) std::copy(h + r[i] * P, h + (r[i] + 1) * P, sel + i * P);
    h = sel;
  }
  at::Tensor logits = at::empty({R, V}, at::TensorOptions().dtype(at::kFloat));
  if (R > 0)
    ops::cpu::matvec(h, R, ops::cpu::mat_of(head, at::Tensor(), V), ops::cpu::Epilogue::kStore,
                     logits.data_ptr<float>(), V, nullptr, 0);
  return logits;
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
