// Model configuration read from a Hugging Face config.json.
#pragma once

#include <cstdint>
#include <string>

namespace mtad {

enum class Arch { Llama, Opt };

struct RopeConfig {
  double theta = 10000.0;
  std::string type = "default";  // "default" or "llama3"
  // llama3 scaling
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position = 8192;
};

struct ModelConfig {
  Arch arch = Arch::Llama;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;  // Llama FFN / OPT ffn_dim
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t max_position_embeddings = 0;
  bool tie_word_embeddings = true;
  int64_t bos_token_id = -1;
  int64_t eos_token_id = -1;  // first of a list when config gives several
  // Llama
  double rms_norm_eps = 1e-6;
  RopeConfig rope;
  bool attention_bias = false;
  bool mlp_bias = false;
  // OPT
  bool do_layer_norm_before = true;
  bool final_layer_norm = true;  // !_remove_final_layer_norm, only with pre-LN
  int64_t word_embed_proj_dim = 0;
  bool enable_bias = true;
  bool layer_norm_affine = true;
  double layer_norm_eps = 1e-5;

  std::string arch_name() const { return arch == Arch::Llama ? "llama" : "opt"; }
};

// Parses and validates `path` (a config.json). Throws ConfigError naming the key.
ModelConfig load_config(const std::string& path);
ModelConfig parse_config(const std::string& json_text, const std::string& origin);

}  // namespace mtad
