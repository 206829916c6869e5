// The only pybind11 translation unit: the Python module mtad_ext._C.
#include <torch/extension.h>

#include <optional>
#include <variant>

#include "decode/draft_length.h"
#include "decode/tree_budget.h"
#include "mtad/aded.h"
#include "mtad/decoder.h"
#include "mtad/errors.h"
#include "mtad/model.h"
#include "ops/activations.h"
#include "ops/beam_step.h"
#include "ops/cpu/simd.h"
#include "ops/fused.h"
#include "ops/kv_compact.h"
#include "ops/linear.h"
#include "ops/norms.h"
#include "ops/rope.h"
#include "ops/sampling.h"
#include "ops/to_host.h"
#include "ops/tree_accept.h"
#include "ops/tree_attention.h"
#include "ops/verify.h"

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

py::dict stats_dict(const mtad::StepStats& s) {
  py::dict d;
  d["emitted"] = s.emitted;
  d["drafted"] = s.drafted;
  d["accepted"] = s.accepted;
  d["target_forwards"] = s.target_forwards;
  d["draft_forwards"] = s.draft_forwards;
  d["draft_s"] = s.draft_s;
  d["verify_s"] = s.verify_s;
  d["rollback_s"] = s.rollback_s;
  d["other_s"] = s.other_s;
  d["host_reads"] = s.host_reads;
  return d;
}

py::object none_if_undefined(const at::Tensor& t) { return t.defined() ? py::cast(t) : py::none(); }

void bind_draft_tree(py::module_& m) {
  using mtad::DraftTree;
  py::class_<DraftTree>(m, "DraftTree",
                        "A draft token tree below the root (the last committed token); parents precede "
                        "children. The structure every method verifies (a chain for sps and mtad).")
      .def(py::init<>())
      .def_static("chain", [](const std::vector<int64_t>& tokens) { return DraftTree::chain(tokens); },
                  py::arg("tokens"), "The chain root -> tokens[0] -> tokens[1] -> ...")
      .def(
          "add",
          [](DraftTree& t, int64_t parent, int64_t token) {
            if (parent < -1 || parent >= t.size())
              throw mtad::InputError("parent " + std::to_string(parent) + " is not -1 or a node of the tree");
            return t.add(parent, token);
          },
          py::arg("parent"), py::arg("token"), "Append a child of `parent` (-1: the root); returns its index.")
      .def("add_path", &DraftTree::add_path, py::arg("tokens"),
           "Add the root path `tokens`, sharing the nodes of its longest prefix already in the tree.")
      .def_readonly("parent", &DraftTree::parent)
      .def_readonly("token", &DraftTree::token)
      .def_readonly("depth", &DraftTree::depth)
      .def("__len__", &DraftTree::size)
      .def("is_chain", &DraftTree::is_chain)
      .def("path_to", &DraftTree::path_to, py::arg("node"))
      .def(
          "inputs",
          [](const DraftTree& t, int64_t root_token, int64_t root_pos) {
            const DraftTree::Inputs in = t.inputs(root_token, root_pos);
            return py::make_tuple(in.ids, none_if_undefined(in.positions), none_if_undefined(in.mask));
          },
          py::arg("root_token"), py::arg("root_pos"),
          "(ids, positions, tree_mask) for Model.forward: the root, then every node; positions and mask\n"
          "are None for a chain (causal order is its mask).")
      .def(
          "commit",
          [](const DraftTree& t, KVCache& cache, int64_t prefix, const std::vector<int64_t>& path) {
            for (size_t i = 0; i < path.size(); ++i)
              if (path[i] < 0 || path[i] >= t.size() || t.parent[path[i]] != (i ? path[i - 1] : -1))
                throw mtad::InputError("commit: the path is not a root path of the tree");
            if (prefix < 0 || prefix + t.size() > cache.length)
              throw mtad::InputError("commit: the cache does not hold the tree's nodes after the prefix");
            t.commit(cache, prefix, path);
          },
          py::arg("cache"), py::arg("prefix"), py::arg("path"),
          "After a forward that wrote node i at slot prefix + i: keep the root path `path` (node\n"
          "indices) at prefix, prefix + 1, ... and set the length to prefix + len(path).");
}

// gamma: a draft length >= 1, or "auto" (DecodeConfig::kAutoGamma).
int64_t parse_gamma(const std::variant<int64_t, std::string>& g) {
  if (const auto* n = std::get_if<int64_t>(&g)) {
    if (*n < 1) throw mtad::InputError("gamma must be >= 1 or \"auto\", got " + std::to_string(*n));
    return *n;
  }
  if (std::get<std::string>(g) != "auto")
    throw mtad::InputError("gamma must be a number >= 1 or \"auto\", got '" + std::get<std::string>(g) + "'");
  return mtad::DecodeConfig::kAutoGamma;
}

void bind_draft_length(py::module_& m) {
  py::class_<mtad::DraftLength>(m, "DraftLength",
                                "The automatic draft length's controller (decode/draft_length.h), for tests and "
                                "for custom loops: next() picks a gamma, observe() reports what was accepted.")
      .def(py::init<std::vector<double>, double>(), py::arg("verify_seconds"), py::arg("draft_seconds"))
      .def("next", &mtad::DraftLength::next)
      .def("reset", &mtad::DraftLength::reset)
      .def("observe", &mtad::DraftLength::observe, py::arg("gamma"), py::arg("accepted"))
      .def("rate", &mtad::DraftLength::rate, py::arg("gamma"))
      .def_property_readonly("acceptance", &mtad::DraftLength::acceptance)
      .def_property_readonly("max_gamma", &mtad::DraftLength::max_gamma);
  py::class_<mtad::TreeBudget>(m, "TreeBudget",
                               "ADED's automatic node budget's controller (decode/tree_budget.h), for tests and "
                               "for custom loops: next(extra) picks a budget, observe() reports which of the "
                               "trie's first nodes were accepted.")
      .def(py::init<std::vector<double>, int64_t>(), py::arg("verify_seconds"), py::arg("max_nodes"))
      .def("next", &mtad::TreeBudget::next, py::arg("extra") = 0)
      .def("reset", &mtad::TreeBudget::reset)
      .def("observe", &mtad::TreeBudget::observe, py::arg("budget"), py::arg("accepted"))
      .def("rate", &mtad::TreeBudget::rate, py::arg("budget"), py::arg("extra") = 0)
      .def("acceptance", [](const mtad::TreeBudget& b, int64_t rank) {
        if (rank < 0 || rank >= b.max_nodes()) throw mtad::InputError("rank out of range");
        return b.acceptance(rank);
      }, py::arg("rank"))
      .def_property_readonly("max_nodes", &mtad::TreeBudget::max_nodes);
}

void bind_decoder(py::module_& m) {
  using mtad::Decoder;
  bind_draft_tree(m);
  bind_draft_length(m);
  // The method table (decode/methods.cpp), for the driver's and the command line's lists.
  py::list names, draft_names;
  for (const mtad::MethodInfo& info : mtad::methods()) {
    names.append(info.name);
    if (info.needs_draft) draft_names.append(info.name);
  }
  m.attr("METHODS") = py::tuple(names);
  m.attr("DRAFT_METHODS") = py::tuple(draft_names);
  py::class_<Decoder>(m, "Decoder",
                      "One decoding step of a method (one of METHODS) per call; see algorithms.md for the "
                      "semantics.")
      .def(py::init([](Model& target, Model* draft, const std::string& method, double temperature, int64_t top_k,
                       double top_p, std::optional<double> draft_temperature, std::optional<int64_t> draft_top_k,
                       std::optional<double> draft_top_p, const std::variant<int64_t, std::string>& gamma,
                       int64_t width, double tau, bool with_replacement, int64_t seed, int64_t capacity,
                       int64_t max_gamma) {
             mtad::DecodeConfig c;
             c.method = mtad::parse_method(method);
             c.target = {temperature, top_k, top_p};
             c.draft = {draft_temperature.value_or(temperature), draft_top_k.value_or(top_k),
                        draft_top_p.value_or(top_p)};
             c.gamma = parse_gamma(gamma);
             c.max_gamma = max_gamma;
             c.width = width;
             c.tau = tau;
             c.with_replacement = with_replacement;
             c.seed = static_cast<uint64_t>(seed);
             return std::make_unique<Decoder>(target, draft, c, capacity);
           }),
           py::arg("target"), py::arg("draft") = nullptr, py::arg("method") = "ar", py::arg("temperature") = 1.0,
           py::arg("top_k") = 10, py::arg("top_p") = 0.9, py::arg("draft_temperature") = py::none(),
           py::arg("draft_top_k") = py::none(), py::arg("draft_top_p") = py::none(), py::arg("gamma") = 4,
           py::arg("width") = 4, py::arg("tau") = 0.5, py::arg("with_replacement") = false, py::arg("seed") = 0,
           py::arg("capacity") = 2048, py::arg("max_gamma") = 8,
           // The decoder holds references to the models: keep them alive as long as it lives.
           py::keep_alive<1, 2>(), py::keep_alive<1, 3>())
      .def("start", &Decoder::start, py::arg("prompt"), py::call_guard<py::gil_scoped_release>(),
           "Start a new sequence from the prompt's token ids.")
      .def("step", &Decoder::step, py::call_guard<py::gil_scoped_release>(),
           "Run one step; returns the emitted token ids (at least one).")
      .def_property_readonly("tokens", &Decoder::tokens, "The committed token ids, prompt included.")
      .def_property_readonly("last_stats", [](const Decoder& d) { return stats_dict(d.last()); })
      .def_property_readonly("total_stats", [](const Decoder& d) { return stats_dict(d.total()); })
      .def_property_readonly("method", [](const Decoder& d) { return mtad::method_name(d.config().method); })
      .def_property_readonly(
          "gamma",
          [](const Decoder& d) -> py::object {
            if (d.auto_gamma()) return py::str("auto");
            return py::int_(d.config().gamma);
          },
          "The draft length asked for: a number, or \"auto\" (chosen per step; last_stats['drafted'] says "
          "what a step drafted)")
      .def_property_readonly("target_cache", &Decoder::target_cache, py::return_value_policy::reference_internal)
      .def_property_readonly("draft_cache", &Decoder::draft_cache, py::return_value_policy::reference_internal);
}

// ---- ADED (algorithms.md 4): the tri-gram table and its parameters ---------------------
mtad::MctsReward parse_reward(const std::string& s) {
  if (s == "table") return mtad::MctsReward::Table;
  if (s == "public") return mtad::MctsReward::Public;
  throw mtad::InputError("reward '" + s + "' is not one of table, public");
}

std::vector<int64_t> ids_of(const at::Tensor& t) {
  if (t.dim() != 1 || t.scalar_type() != at::kLong) throw mtad::InputError("ids must be a 1-D int64 tensor");
  const at::Tensor c = t.to(at::kCPU).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

void bind_aded(py::module_& m) {
  using mtad::AdedParams;
  using mtad::TrigramTable;
  using Table = std::shared_ptr<TrigramTable>;

  py::class_<AdedParams>(m, "AdedParams", "ADED parameters (algorithms.md 4), with the documented defaults")
      .def(py::init([](int64_t window, double increment, double cap, bool adapt,
                       bool adapt_prompt, int64_t simulations, int64_t depth, double c1, double c2, int64_t paths,
                       bool extend, const std::variant<int64_t, std::string>& max_nodes, const std::string& reward,
                       int64_t lookup) {
             AdedParams p;
             p.table = {window, increment, cap};
             p.adapt = adapt;
             p.adapt_prompt = adapt_prompt;
             p.mcts.simulations = simulations;
             p.mcts.depth = depth;
             p.mcts.c1 = c1;
             p.mcts.c2 = c2;
             p.mcts.paths = paths;
             p.mcts.extend = extend;
             if (const auto* n = std::get_if<int64_t>(&max_nodes)) {
               p.mcts.max_nodes = *n;
             } else if (std::get<std::string>(max_nodes) == "auto") {
               p.auto_nodes = true;  // up to the default budget
             } else {
               throw mtad::InputError("aded: max_nodes must be a number or \"auto\", got '" +
                                      std::get<std::string>(max_nodes) + "'");
             }
             p.mcts.reward = parse_reward(reward);
             p.lookup = lookup;
             mtad::check_aded_params(p);
             return p;
           }),
           py::kw_only(), py::arg("window") = 16, py::arg("increment") = 0.04,
           py::arg("cap") = 3.0, py::arg("adapt") = true, py::arg("adapt_prompt") = false,
           py::arg("simulations") = 150, py::arg("depth") = 3,
           py::arg("c1") = 32.0, py::arg("c2") = 8.0, py::arg("paths") = 24, py::arg("extend") = true,
           py::arg("max_nodes") = 64, py::arg("reward") = "table", py::arg("lookup") = 0)
      .def_property_readonly("window", [](const AdedParams& p) { return p.table.window; })
      .def_property_readonly("increment", [](const AdedParams& p) { return p.table.increment; })
      .def_property_readonly("cap", [](const AdedParams& p) { return p.table.cap; })
      .def_property_readonly("adapt", [](const AdedParams& p) { return p.adapt; })
      .def_property_readonly("adapt_prompt", [](const AdedParams& p) { return p.adapt_prompt; })
      .def_property_readonly("simulations", [](const AdedParams& p) { return p.mcts.simulations; })
      .def_property_readonly("depth", [](const AdedParams& p) { return p.mcts.depth; })
      .def_property_readonly("c1", [](const AdedParams& p) { return p.mcts.c1; })
      .def_property_readonly("c2", [](const AdedParams& p) { return p.mcts.c2; })
      .def_property_readonly("paths", [](const AdedParams& p) { return p.mcts.paths; })
      .def_property_readonly("extend", [](const AdedParams& p) { return p.mcts.extend; })
      .def_property_readonly("max_nodes", [](const AdedParams& p) { return p.mcts.max_nodes; },
                             "the node budget (with auto_nodes: the largest budget a step may choose)")
      .def_property_readonly("auto_nodes", [](const AdedParams& p) { return p.auto_nodes; },
                             "whether each step chooses its node budget (max_nodes=\"auto\")")
      .def_property_readonly("lookup", [](const AdedParams& p) { return p.lookup; })
      .def_property_readonly("reward", [](const AdedParams& p) {
        return std::string(p.mcts.reward == mtad::MctsReward::Table ? "table" : "public");
      })
      .def("__repr__", [](const AdedParams& p) {
        return "AdedParams(simulations=" + std::to_string(p.mcts.simulations) +
               ", depth=" + std::to_string(p.mcts.depth) + ", paths=" + std::to_string(p.mcts.paths) +
               ", max_nodes=" + (p.auto_nodes ? std::string("'auto'") : std::to_string(p.mcts.max_nodes)) +
               ", lookup=" + std::to_string(p.lookup) +
               ", adapt=" + (p.adapt ? "True" : "False") + ")";
      });

  py::class_<TrigramTable, Table>(m, "TrigramTable",
                                  "ADED's adaptive tri-gram table: (a, b) -> {c: value}, rows best first. "
                                  "Build with add_sequence() + finalize(), or load() a file made by "
                                  "`mtad build-trigram`.")
      .def(py::init([](int64_t vocab_size) { return std::make_shared<TrigramTable>(vocab_size); }),
           py::arg("vocab_size"))
      .def_static(
          "build",
          [](const std::vector<std::vector<int64_t>>& sequences, int64_t vocab_size, int64_t max_successors) {
            auto t = std::make_shared<TrigramTable>(vocab_size);
            for (const auto& s : sequences) t->add_sequence(s.data(), static_cast<int64_t>(s.size()));
            py::gil_scoped_release release;
            t->finalize(max_successors);
            return t;
          },
          py::arg("sequences"), py::arg("vocab_size"), py::arg("max_successors") = 12,
          "A table from token-id sequences: tri-gram counts normalised per context, the best "
          "max_successors kept per context (0: all).")
      .def_static(
          "load",
          [](const std::string& path, std::optional<int64_t> vocab_size, int64_t max_successors) {
            py::gil_scoped_release release;
            return std::make_shared<TrigramTable>(TrigramTable::load(path, vocab_size.value_or(-1), max_successors));
          },
          py::arg("path"), py::arg("vocab_size") = py::none(), py::arg("max_successors") = 12,
          "Load a table file; vocab_size: the model's (raises InputError when the file was built for another). "
          "Raises FormatError for a malformed, truncated, corrupt or other-version file.")
      .def(
          "add_sequence",
          [](TrigramTable& t, const at::Tensor& ids) {
            const std::vector<int64_t> v = ids_of(ids);
            const auto lock = t.lock();
            t.add_sequence(v.data(), static_cast<int64_t>(v.size()));
          },
          py::arg("ids"))
      .def(
          "add_sequence",
          [](TrigramTable& t, const std::vector<int64_t>& ids) {
            const auto lock = t.lock();
            t.add_sequence(ids.data(), static_cast<int64_t>(ids.size()));
          },
          py::arg("ids"), "Count the tri-grams of one token sequence (a document); they become values at finalize().")
      .def(
          "finalize",
          [](TrigramTable& t, int64_t max_successors) {
            py::gil_scoped_release release;
            const auto lock = t.lock();
            t.finalize(max_successors);
          },
          py::arg("max_successors") = 12,
          "Turn the pending counts into rows (count / context total, best max_successors kept; values add to a "
          "context already present).")
      .def(
          "prune",
          [](TrigramTable& t, int64_t k) {
            const auto lock = t.lock();
            t.prune(k);
          },
          py::arg("max_successors"))
      .def(
          "adapt",
          [](TrigramTable& t, const std::vector<int64_t>& tokens, int64_t window, double increment, double cap) {
            const auto lock = t.lock();
            t.adapt(tokens.data(), static_cast<int64_t>(tokens.size()), {window, increment, cap});
          },
          py::arg("tokens"), py::arg("window") = 16, py::arg("increment") = 0.04, py::arg("cap") = 3.0,
          "ADED's adaptation: +increment to every tri-gram in the last `window` tokens, capped at cap.")
      .def(
          "add",
          [](TrigramTable& t, int64_t a, int64_t b, int64_t c, double delta, double cap) {
            const auto lock = t.lock();
            t.add(a, b, c, delta, cap);
          },
          py::arg("a"), py::arg("b"), py::arg("c"), py::arg("delta"), py::arg("cap") = 3.0)
      .def(
          "lookup",
          [](const TrigramTable& t, int64_t a, int64_t b) {
            const auto lock = t.lock();
            std::vector<std::pair<int64_t, float>> out;
            for (const auto& e : t.row(a, b)) out.emplace_back(e.token, e.value);
            return out;
          },
          py::arg("a"), py::arg("b"), "The row of context (a, b): [(token, value)], best first.")
      .def(
          "save",
          [](const TrigramTable& t, const std::string& path) {
            py::gil_scoped_release release;
            const auto lock = t.lock();
            t.save(path);
          },
          py::arg("path"), "Write the table (with its adaptation) to a versioned, checksummed file.")
      .def(
          "draft",
          [](const TrigramTable& t, int64_t a, int64_t b, const AdedParams& p, int64_t seed, int64_t offset,
             const std::vector<int64_t>& context) {
            mtad::AdedDraft draft;
            {
              const auto lock = t.lock();
              draft = mtad::aded_draft(t, std::array<int64_t, 2>{a, b}, context.data(),
                                       static_cast<int64_t>(context.size()), p, p.lookup, static_cast<uint64_t>(seed),
                                       static_cast<uint64_t>(offset));
            }
            const mtad::DraftTree& trie = draft.tree;
            const mtad::MctsStats& stats = draft.stats;
            py::dict d;
            d["parent"] = trie.parent;
            d["token"] = trie.token;
            d["depth"] = trie.depth;
            d["tree_nodes"] = stats.tree_nodes;
            d["root_visits"] = stats.root_visits;
            d["rollout_tokens"] = stats.rollout_tokens;
            return d;
          },
          py::arg("a"), py::arg("b"), py::arg("params") = AdedParams{}, py::arg("seed") = 0, py::arg("offset") = 0,
          py::arg("context") = std::vector<int64_t>{},
          "Run ADED's MCTS from the state (a, b); returns the draft trie (parent, token, depth) and search "
          "counters. With params.lookup > 0 the context-lookup path drawn from `context` (the committed "
          "tokens) is added, as a decoding step does.")
      .def_property_readonly("vocab_size", &TrigramTable::vocab_size)
      .def_property_readonly("num_contexts", [](const TrigramTable& t) {
        const auto lock = t.lock();
        return t.num_contexts();
      })
      .def_property_readonly("num_entries", [](const TrigramTable& t) {
        const auto lock = t.lock();
        return t.num_entries();
      })
      .def_property_readonly("pending_trigrams", [](const TrigramTable& t) {
        const auto lock = t.lock();
        return t.pending_trigrams();
      })
      .def("__len__", [](const TrigramTable& t) {
        const auto lock = t.lock();
        return t.num_contexts();
      })
      .def("__repr__", [](const TrigramTable& t) {
        const auto lock = t.lock();
        return "TrigramTable(vocab_size=" + std::to_string(t.vocab_size()) + ", contexts=" +
               std::to_string(t.num_contexts()) + ", entries=" + std::to_string(t.num_entries()) + ")";
      });

  // The Decoder (bound in bind_decoder) gains the ADED hooks.
  auto dec = py::reinterpret_borrow<py::class_<mtad::Decoder>>(m.attr("Decoder"));
  dec.def("set_trigram_table", &mtad::Decoder::set_trigram_table, py::arg("table"),
          "ADED: draft from (and adapt) this table; it persists across prompts and may be shared and saved.")
      .def_property_readonly("trigram_table", &mtad::Decoder::trigram_table, "ADED: the table in use (else None).")
      .def_property(
          "aded_params", [](const mtad::Decoder& d) { return d.config().aded; },
          [](mtad::Decoder& d, const AdedParams& p) { d.set_aded_params(p); }, "ADED parameters (AdedParams).");
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
  m.def("_host_reads", &mtad::ops::host_reads,
        "Device-to-host reads (on a GPU, synchronisations) the decode path has made in this process "
        "(ops::to_host); Decoder.last_stats['host_reads'] counts one step's.");

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
      .def_property_readonly("dtype", [](const Model& self) { return std::string(c10::toString(self.dtype())); },
                             "dtype of activations and the KV cache")
      .def_property_readonly("weight_dtype",
                             [](const Model& self) { return std::string(c10::toString(self.weight_dtype())); },
                             "dtype the weight matrices are stored in")
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
          "positions: int64 [T] (default: cache.length + arange(T)); tree_mask: bool [T, M], rules the\n"
          "last M slots (earlier tree nodes, then the T new tokens; default causal); logit_rows:\n"
          "int64 [R] (default all rows).")
      .def("forward_seconds", &Model::forward_seconds, py::arg("T"), py::call_guard<py::gil_scoped_release>(),
           "Seconds one forward over T new tokens takes (the best of a few runs, measured once per T and kept): "
           "the cost table of gamma \"auto\".")
      .def("forward_seconds_table", &Model::forward_seconds_table, py::call_guard<py::gil_scoped_release>(),
           "The cost table measured (or set) so far: {T: seconds}.")
      .def("set_forward_seconds", &Model::set_forward_seconds, py::arg("T"), py::arg("seconds"),
           py::call_guard<py::gil_scoped_release>(),
           "Use `seconds` for a T-token forward instead of measuring it (a table saved earlier on this machine).");

  bind_decoder(m);

  m.def(
      "load_model",
      [](const std::string& path, const std::string& device, const std::string& dtype, bool mmap) {
        py::gil_scoped_release release;
        return mtad::load_model(path, mtad::LoadOptions{device, dtype, mmap});
      },
      py::arg("path"), py::arg("device") = "cpu", py::arg("dtype") = "auto", py::arg("mmap") = false,
      "Load a Llama or OPT model folder (config.json + safetensors).\n"
      "dtype: auto, float32, float16 or bfloat16. On a GPU the run dtype (auto: the checkpoint's\n"
      "half type). On the CPU compute is float32 and dtype is the storage of the weight matrices\n"
      "(auto = float32; float16/bfloat16 halve the bytes each decode step reads). mmap: on the CPU, run from the file mapping without copying (default: copy\n"
      "into huge-page memory in the panel layout of the CPU kernels, which decodes faster).");

  bind_aded(m);  // after Decoder exists: it extends it
}

// Every op, registered once as a torch operator (torch.ops.mtad.*): another PyTorch
// runtime calls the fused kernels on its own tensors, and mtad_ext/ops.py wraps these for
// Python (unsigned seeds, dict results). Seeds and offsets are int64 in the schema (the
// same 64 bits as the kernels' uint64).
TORCH_LIBRARY(mtad, m) {
  m.def("rms_norm(Tensor x, Tensor w, float eps) -> Tensor", &mtad::ops::rms_norm);
  m.def("silu_mul(Tensor gate, Tensor up) -> Tensor", &mtad::ops::silu_mul);
  m.def("relu_(Tensor(a!) x) -> ()", [](at::Tensor x) { mtad::ops::relu_(x); });
  m.def("linear(Tensor x, Tensor w, Tensor? b) -> Tensor",
        [](const at::Tensor& x, const at::Tensor& w, const std::optional<at::Tensor>& b) {
          return mtad::ops::linear(x, w, opt(b));
        });
  m.def("layer_norm(Tensor x, Tensor? w, Tensor? b, float eps) -> Tensor",
        [](const at::Tensor& x, const std::optional<at::Tensor>& w, const std::optional<at::Tensor>& b, double eps) {
          return mtad::ops::layer_norm(x, opt(w), opt(b), eps);
        });
  m.def("rope_(Tensor(a!) x, Tensor positions, Tensor inv_freq) -> ()",
        [](at::Tensor x, const at::Tensor& positions, const at::Tensor& inv_freq) {
          mtad::ops::rope_(x, positions, inv_freq);
        });
  m.def("linear_add_(Tensor(a!) y, Tensor x, Tensor w, Tensor? b) -> ()",
        [](at::Tensor y, const at::Tensor& x, const at::Tensor& w, const std::optional<at::Tensor>& b) {
          mtad::ops::linear_add_(y, x, w, opt(b));
        });
  m.def("gate_up_silu(Tensor x, Tensor w_gate, Tensor w_up, Tensor? b_gate, Tensor? b_up) -> Tensor",
        [](const at::Tensor& x, const at::Tensor& w_gate, const at::Tensor& w_up,
           const std::optional<at::Tensor>& b_gate, const std::optional<at::Tensor>& b_up) {
          return mtad::ops::gate_up_silu(x, w_gate, w_up, opt(b_gate), opt(b_up));
        });
  m.def("linear_relu(Tensor x, Tensor w, Tensor? b) -> Tensor",
        [](const at::Tensor& x, const at::Tensor& w, const std::optional<at::Tensor>& b) {
          return mtad::ops::linear_relu(x, w, opt(b));
        });
  m.def("qkv_rope(Tensor x, Tensor wq, Tensor wk, Tensor wv, Tensor? bq, Tensor? bk, Tensor? bv, Tensor? positions, "
        "Tensor? inv_freq, Tensor(a!) k_out, Tensor(b!) v_out) -> Tensor",
        [](const at::Tensor& x, const at::Tensor& wq, const at::Tensor& wk, const at::Tensor& wv,
           const std::optional<at::Tensor>& bq, const std::optional<at::Tensor>& bk,
           const std::optional<at::Tensor>& bv, const std::optional<at::Tensor>& positions,
           const std::optional<at::Tensor>& inv_freq, at::Tensor k_out, at::Tensor v_out) {
          return mtad::ops::qkv_rope(x, wq, wk, wv, opt(bq), opt(bk), opt(bv), opt(positions), opt(inv_freq), k_out,
                                     v_out);
        });
  m.def("tree_attention(Tensor q, Tensor k, Tensor v, int prefix, Tensor? mask, float scale) -> Tensor",
        [](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t prefix,
           const std::optional<at::Tensor>& mask, double scale) {
          return mtad::ops::tree_attention(q, k, v, prefix, opt(mask), scale);
        });
  m.def("set_min_parallel_work(int n) -> int", [](int64_t n) {
    // Least multiply-adds a CPU kernel splits across threads; returns the previous value.
    return mtad::ops::cpu::min_parallel_work().exchange(std::max<int64_t>(0, n));
  });
  // [torch.library: sampling, beam_step]
  m.def("normalize(Tensor logits, float temperature, int top_k, float top_p) -> Tensor", &mtad::ops::normalize);
  m.def("sample(Tensor logprobs, int seed, int offset) -> Tensor",
        [](const at::Tensor& logprobs, int64_t seed, int64_t offset) {
          return mtad::ops::sample(logprobs, static_cast<uint64_t>(seed), static_cast<uint64_t>(offset));
        });
  m.def("beam_step(Tensor logits, Tensor scores, int width, float temperature, int top_k, float top_p, "
        "bool with_replacement, int seed, int offset) -> (Tensor, Tensor, Tensor, Tensor)",
        [](const at::Tensor& logits, const at::Tensor& scores, int64_t width, double temperature, int64_t top_k,
           double top_p, bool with_replacement, int64_t seed, int64_t offset) {
          return mtad::ops::beam_step(logits, scores, width, temperature, top_k, top_p, with_replacement,
                                      static_cast<uint64_t>(seed), static_cast<uint64_t>(offset));
        });
  m.def("beam_step_padded(Tensor logits, Tensor scores, int width, float temperature, int top_k, float top_p, "
        "bool with_replacement, int seed, int offset) -> (Tensor, Tensor, Tensor, Tensor, Tensor)",
        [](const at::Tensor& logits, const at::Tensor& scores, int64_t width, double temperature, int64_t top_k,
           double top_p, bool with_replacement, int64_t seed, int64_t offset) {
          const mtad::ops::BeamStep b =
              mtad::ops::beam_step_padded(logits, scores, width, temperature, top_k, top_p, with_replacement,
                                          static_cast<uint64_t>(seed), static_cast<uint64_t>(offset));
          return std::make_tuple(b.parent, b.token, b.token_logprob, b.score, b.bad);
        });
  // [torch.library: verify, sps_accept, kv_compact]
  m.def("verify(Tensor target_logits, Tensor parents, Tensor tokens, Tensor best_lq, float tau, float temperature, "
        "int top_k, float top_p, int seed, int offset) -> (int, int, Tensor, int, Tensor)",
        [](const at::Tensor& target_logits, const at::Tensor& parents, const at::Tensor& tokens,
           const at::Tensor& best_lq, double tau, double temperature, int64_t top_k, double top_p, int64_t seed,
           int64_t offset) {
          mtad::ops::VerifyResult r =
              mtad::ops::verify(target_logits, parents, tokens, best_lq, tau, temperature, top_k, top_p,
                                static_cast<uint64_t>(seed), static_cast<uint64_t>(offset));
          return std::make_tuple(r.accept_len, r.accept_node, r.path, r.bonus_token, r.node_logprob);
        });
  m.def("sps_accept(Tensor target_logprobs, Tensor draft_logprobs, Tensor tokens, int seed, int offset) -> (int, int)",
        [](const at::Tensor& target_logprobs, const at::Tensor& draft_logprobs, const at::Tensor& tokens,
           int64_t seed, int64_t offset) {
          const auto [n, token] = mtad::ops::sps_accept(target_logprobs, draft_logprobs, tokens,
                                                        static_cast<uint64_t>(seed), static_cast<uint64_t>(offset));
          return std::make_tuple(n, token);
        });
  m.def("kv_compact(Tensor(a!) k, Tensor(b!) v, int prefix, Tensor slots) -> ()",
        [](at::Tensor k, at::Tensor v, int64_t prefix, const at::Tensor& slots) {
          mtad::ops::kv_compact(k, v, prefix, slots);
        });
  // [torch.library: tree_accept, tree_sample (ADED)]
  m.def("tree_accept(Tensor target, Tensor parents, Tensor tokens) -> (int, int, Tensor, int)",
        [](const at::Tensor& target, const at::Tensor& parents, const at::Tensor& tokens) {
          const mtad::ops::TreeAcceptResult r = mtad::ops::tree_accept(target, parents, tokens);
          return std::make_tuple(r.accept_len, r.accept_node, r.path, r.next_token);
        });
  m.def("tree_sample(Tensor target_logprobs, Tensor parents, Tensor tokens, int seed, int offset) -> "
        "(int, int, Tensor, int)",
        [](const at::Tensor& logprobs, const at::Tensor& parents, const at::Tensor& tokens, int64_t seed,
           int64_t offset) {
          const mtad::ops::TreeAcceptResult r = mtad::ops::tree_sample(
              logprobs, parents, tokens, static_cast<uint64_t>(seed), static_cast<uint64_t>(offset));
          return std::make_tuple(r.accept_len, r.accept_node, r.path, r.next_token);
        });
}
