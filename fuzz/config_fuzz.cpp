// libFuzzer target: the config.json reader (csrc/io/config.cpp). Any text must give a
// ModelConfig that is consistent, or mtad::ConfigError naming the key.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "mtad/config.h"
#include "mtad/errors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const mtad::ModelConfig c = mtad::parse_config(text, "fuzz/config.json");
    // What the loader relies on: positive sizes and heads that divide.
    if (c.vocab_size <= 0 || c.hidden_size <= 0 || c.num_layers <= 0 || c.num_heads <= 0 || c.num_kv_heads <= 0 ||
        c.head_dim <= 0 || c.num_heads % c.num_kv_heads != 0 || c.max_position_embeddings <= 0)
      std::abort();
  } catch (const mtad::Error&) {
  }
  return 0;
}
