// The only pybind11 translation unit: the Python module mtad_ext._C.
#include <torch/extension.h>

#include <optional>

#include "mtad/errors.h"
#include "mtad/model.h"
#include "ops/activations.h"
#include "ops/linear.h"
#include "ops/norms.h"
#include "ops/rope.h"
#include "ops/tree_attention.h"

namespace py = pybind11;
using mtad::KVCache;
using mtad::Model;

namespace {

at::Tensor opt(const std::optional<at::Tensor>& t) { return t.has_value() ? *t : at::Tensor(); }

py::dict config_dict(const mtad::ModelConfig& c) {
  py::dict d;
  d["arch"] = c.arch_name();
  d["vocab_size"] = c.vocab_size;
  d["hidden_size"] = c.hidden_size;
  d["intermediate_size"] = c.intermediate_size;
  d["num_layers"] = c.num_layers;
  d["num_heads"] = c.num_heads;
  d["num_kv_heads"] = c.num_kv_heads;
  d["head_dim"] = c.head_dim;
  d["max_position_embeddings"] = c.max_position_embeddings;
  d["tie_word_embeddings"] = c.tie_word_embeddings;
  d["bos_token_id"] = c.bos_token_id;
  d["eos_token_id"] = c.eos_token_id;
  if (c.arch == mtad::Arch::Llama) {
    d["rms_norm_eps"] = c.rms_norm_eps;
    d["rope_theta"] = c.rope.theta;
    d["rope_type"] = c.rope.type;
  } else {
    d["do_layer_norm_before"] = c.do_layer_norm_before;
    d["word_embed_proj_dim"] = c.word_embed_proj_dim;
  }
  return d;
}

void register_errors(py::module_& m) {
  // Translators run newest first, so the specific types are registered after the base.
  static py::exception<mtad::Error> base(m, "MtadError", PyExc_ValueError);
  py::register_exception<mtad::FormatError>(m, "FormatError", base.ptr());
  py::register_exception<mtad::ConfigError>(m, "ConfigError", base.ptr());
  py::register_exception<mtad::WeightError>(m, "WeightError", base.ptr());
  py::register_exception<mtad::InputError>(m, "InputError", base.ptr());
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const mtad::FileNotFound& e) {
      PyErr_SetString(PyExc_FileNotFoundError, e.what());
    } catch (const c10::Error& e) {
      // Op argument checks: the message without the C++ backtrace.
      PyErr_SetString(PyExc_RuntimeError, e.what_without_backtrace());
    }
  });
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "mtad native engine: model loading, forward with a KV cache, fused ops";
  register_errors(m);

  py::class_<KVCache>(m, "KVCache", "Preallocated KV cache with a length counter")
      .def_property_readonly("length", [](const KVCache& c) { return c.length; })
      .def_property_readonly("capacity", &KVCache::capacity)
      .def_property_readonly("k", [](const KVCache& c) { return c.k; },
                             "[num_layers, capacity, num_kv_heads, head_dim]")
      .def_property_readonly("v", [](const KVCache& c) { return c.v; })
      .def("truncate", &KVCache::truncate, py::arg("length"), "Drop every slot at and after `length`.")
      .def("__repr__", [](const KVCache& c) {
        return "KVCache(length=" + std::to_string(c.length) + ", capacity=" + std::to_string(c.capacity()) + ")";
      });

  py::class_<Model>(m, "Model", "A Llama or OPT model loaded from a Hugging Face folder")
      .def_property_readonly("config", [](const Model& self) { return config_dict(self.config()); })
      .def_property_readonly("device", [](const Model& self) { return self.device().str(); })
      .def_property_readonly("dtype", [](const Model& self) { return std::string(c10::toString(self.dtype())); })
      .def("new_cache", &Model::new_cache, py::arg("capacity"), "A KV cache holding up to `capacity` tokens.")
      .def(
          "forward",
          [](Model& self, KVCache& cache, const at::Tensor& tokens, const std::optional<at::Tensor>& positions,
             const std::optional<at::Tensor>& tree_mask, const std::optional<at::Tensor>& logit_rows) {
            py::gil_scoped_release release;
            return self.forward(cache, tokens, opt(positions), opt(tree_mask), opt(logit_rows));
          },
          py::arg("cache"), py::arg("tokens"), py::arg("positions") = py::none(), py::arg("tree_mask") = py::none(),
          py::arg("logit_rows") = py::none(),
          "Run T new tokens (int64 [T]) against the cache; returns float32 logits [R, vocab].\n"
          "positions: int64 [T] (default: cache.length + arange(T)); tree_mask: bool [T, T], row i\n"
          "the new tokens token i sees (default causal); logit_rows: int64 [R] (default all rows).");

  m.def(
      "load_model",
      [](const std::string& path, const std::string& device, const std::string& dtype, bool mmap) {
        py::gil_scoped_release release;
        return mtad::load_model(path, mtad::LoadOptions{device, dtype, mmap});
      },
      py::arg("path"), py::arg("device") = "cpu", py::arg("dtype") = "auto", py::arg("mmap") = false,
      "Load a Llama or OPT model folder (config.json + safetensors).\n"
      "dtype: auto (float32 on the CPU, the checkpoint's half type on a GPU), float32, float16,\n"
      "bfloat16. mmap: on the CPU, run from the file mapping without copying (default: copy\n"
      "into huge-page memory, which decodes faster).");

  auto ops = m.def_submodule("ops", "The engine's fused kernels on plain tensors");
  ops.def("linear", [](const at::Tensor& x, const at::Tensor& w, const std::optional<at::Tensor>& b) {
    return mtad::ops::linear(x, w, opt(b));
  }, py::arg("x"), py::arg("w"), py::arg("b") = py::none());
  ops.def("rms_norm", &mtad::ops::rms_norm, py::arg("x"), py::arg("w"), py::arg("eps"));
  ops.def("layer_norm", [](const at::Tensor& x, const std::optional<at::Tensor>& w,
                           const std::optional<at::Tensor>& b, double eps) {
    return mtad::ops::layer_norm(x, opt(w), opt(b), eps);
  }, py::arg("x"), py::arg("w"), py::arg("b"), py::arg("eps"));
  ops.def("rope_", [](at::Tensor x, const at::Tensor& positions, const at::Tensor& inv_freq) {
    mtad::ops::rope_(x, positions, inv_freq);
  }, py::arg("x"), py::arg("positions"), py::arg("inv_freq"));
  ops.def("tree_attention", [](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t prefix,
                               const std::optional<at::Tensor>& mask, double scale) {
    return mtad::ops::tree_attention(q, k, v, prefix, opt(mask), scale);
  }, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("prefix"), py::arg("mask"), py::arg("scale"));
  ops.def("silu_mul", &mtad::ops::silu_mul, py::arg("gate"), py::arg("up"));
  ops.def("relu_", [](at::Tensor x) { mtad::ops::relu_(x); }, py::arg("x"));
}
