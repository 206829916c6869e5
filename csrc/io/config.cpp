#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "mtad/config.h"
#include "mtad/errors.h"

namespace mtad {
namespace {

using json = nlohmann::json;

struct Reader {
  const json& j;
  std::string origin;

  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw ConfigError(origin + ": '" + key + "' " + what);
  }
  bool has(const std::string& key) const { return j.contains(key) && !j[key].is_null(); }
  int64_t integer(const std::string& key) const {
    if (!has(key)) fail(key, "is required");
    if (!j[key].is_number_integer()) fail(key, "must be an integer");
    return j[key].get<int64_t>();
  }
  int64_t integer(const std::string& key, int64_t def) const { return has(key) ? integer(key) : def; }
  int64_t positive(const std::string& key) const {
    int64_t v = integer(key);
    if (v <= 0) fail(key, "must be positive, got " + std::to_string(v));
    return v;
  }
  double number(const std::string& key, double def) const {
    if (!has(key)) return def;
    if (!j[key].is_number()) fail(key, "must be a number");
    return j[key].get<double>();
  }
  bool boolean(const std::string& key, bool def) const {
    if (!has(key)) return def;
    if (!j[key].is_boolean()) fail(key, "must be true or false");
    return j[key].get<bool>();
  }
  std::string string(const std::string& key, const std::string& def) const {
    if (!has(key)) return def;
    if (!j[key].is_string()) fail(key, "must be a string");
    return j[key].get<std::string>();
  }
  // A token id that may be given as a list (first entry wins) or be absent.
  int64_t token_id(const std::string& key) const {
    if (!has(key)) return -1;
    const json& v = j[key];
    if (v.is_number_integer()) return v.get<int64_t>();
    if (v.is_array() && !v.empty() && v[0].is_number_integer()) return v[0].get<int64_t>();
    fail(key, "must be a token id or a list of token ids");
  }
};

std::string detect_arch(const Reader& r) {
  std::string type = r.string("model_type", "");
  if (type.empty() && r.has("architectures") && r.j["architectures"].is_array() && !r.j["architectures"].empty()) {
    const std::string a = r.j["architectures"][0].get<std::string>();
    if (a.rfind("Llama", 0) == 0) type = "llama";
    if (a.rfind("OPT", 0) == 0) type = "opt";
  }
  if (type.empty()) throw ConfigError(r.origin + ": neither 'model_type' nor 'architectures' names the architecture");
  return type;
}

void read_rope(const Reader& r, ModelConfig& c) {
  // transformers 5.x: rope_parameters {rope_type, rope_theta, ...}; 4.x: rope_theta at top
  // level and an optional rope_scaling {rope_type|type, factor, ...}.
  c.rope.theta = r.number("rope_theta", 10000.0);
  const json* scaling = nullptr;
  std::string key = "rope_scaling";
  if (r.has("rope_parameters")) {
    scaling = &r.j["rope_parameters"];
    key = "rope_parameters";
  } else if (r.has("rope_scaling")) {
    scaling = &r.j["rope_scaling"];
  }
  if (scaling == nullptr) return;
  if (!scaling->is_object()) r.fail(key, "must be an object");
  Reader s{*scaling, r.origin + " [" + key + "]"};
  if (s.has("rope_theta")) c.rope.theta = s.number("rope_theta", c.rope.theta);
  std::string type = s.string("rope_type", s.string("type", "default"));
  if (s.number("partial_rotary_factor", 1.0) != 1.0) s.fail("partial_rotary_factor", "other than 1.0 is not supported");
  if (type == "default") return;
  if (type != "llama3")
    r.fail(key, "has rope_type '" + type + "'; mtad implements 'default' and 'llama3'");
  c.rope.type = "llama3";
  c.rope.factor = s.number("factor", 8.0);
  c.rope.low_freq_factor = s.number("low_freq_factor", 1.0);
  c.rope.high_freq_factor = s.number("high_freq_factor", 4.0);
  c.rope.original_max_position = s.integer("original_max_position_embeddings", c.max_position_embeddings);
  if (c.rope.factor <= 0) s.fail("factor", "must be positive");
  if (c.rope.high_freq_factor <= c.rope.low_freq_factor) s.fail("high_freq_factor", "must exceed low_freq_factor");
}

}  // namespace

ModelConfig parse_config(const std::string& text, const std::string& origin) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw ConfigError(origin + ": malformed JSON: " + e.what());
  }
  if (!j.is_object()) throw ConfigError(origin + ": not a JSON object");
  Reader r{j, origin};
  if (r.has("quantization_config"))
    r.fail("quantization_config", "is present: quantised checkpoints are not supported; give float weights");

  ModelConfig c;
  const std::string type = detect_arch(r);
  c.vocab_size = r.positive("vocab_size");
  c.hidden_size = r.positive("hidden_size");
  c.num_layers = r.positive("num_hidden_layers");
  c.num_heads = r.positive("num_attention_heads");
  c.bos_token_id = r.token_id("bos_token_id");
  c.eos_token_id = r.token_id("eos_token_id");

  if (type == "llama") {
    c.arch = Arch::Llama;
    c.intermediate_size = r.positive("intermediate_size");
    c.num_kv_heads = r.has("num_key_value_heads") ? r.positive("num_key_value_heads") : c.num_heads;
    c.max_position_embeddings = r.integer("max_position_embeddings", 2048);
    c.tie_word_embeddings = r.boolean("tie_word_embeddings", false);
    c.rms_norm_eps = r.number("rms_norm_eps", 1e-6);
    c.attention_bias = r.boolean("attention_bias", false);
    c.mlp_bias = r.boolean("mlp_bias", false);
    const std::string act = r.string("hidden_act", "silu");
    if (act != "silu") r.fail("hidden_act", "is '" + act + "'; Llama in mtad uses 'silu'");
    if (r.has("head_dim")) {
      c.head_dim = r.positive("head_dim");
    } else {
      if (c.hidden_size % c.num_heads != 0) r.fail("hidden_size", "is not a multiple of num_attention_heads");
      c.head_dim = c.hidden_size / c.num_heads;
    }
    if (c.head_dim % 2 != 0) r.fail("head_dim", "must be even for rotary embeddings");
    read_rope(r, c);
  } else if (type == "opt") {
    c.arch = Arch::Opt;
    c.intermediate_size = r.positive("ffn_dim");
    c.num_kv_heads = c.num_heads;
    if (c.hidden_size % c.num_heads != 0) r.fail("hidden_size", "is not a multiple of num_attention_heads");
    c.head_dim = c.hidden_size / c.num_heads;
    c.max_position_embeddings = r.positive("max_position_embeddings");
    c.tie_word_embeddings = r.boolean("tie_word_embeddings", true);
    c.do_layer_norm_before = r.boolean("do_layer_norm_before", true);
    c.final_layer_norm = c.do_layer_norm_before && !r.boolean("_remove_final_layer_norm", false);
    c.word_embed_proj_dim = r.integer("word_embed_proj_dim", c.hidden_size);
    if (c.word_embed_proj_dim <= 0) r.fail("word_embed_proj_dim", "must be positive");
    c.enable_bias = r.boolean("enable_bias", true);
    c.layer_norm_affine = r.boolean("layer_norm_elementwise_affine", true);
    const std::string act = r.string("activation_function", "relu");
    if (act != "relu") r.fail("activation_function", "is '" + act + "'; OPT in mtad uses 'relu'");
  } else {
    r.fail("model_type", "is '" + type + "'; mtad runs 'llama' and 'opt'");
  }
  if (c.num_heads % c.num_kv_heads != 0)
    r.fail("num_key_value_heads", "must divide num_attention_heads");
  if (c.max_position_embeddings <= 0) r.fail("max_position_embeddings", "must be positive");
  return c;
}

ModelConfig load_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw FileNotFound(path + ": no such file");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_config(ss.str(), path);
}

}  // namespace mtad
