// Every decoding method, in one table: a method is a drafter (decode/propose/), an
// acceptance rule (decode/accept/) and its checks and cache headroom. Adding one is an
// enum value (mtad/decoder.h) and a row here; parse_method, the Python module's METHODS
// and the command line read this table.
#include "decode/methods.h"

#include "mtad/aded.h"
#include "mtad/errors.h"

namespace mtad {
namespace {

void check_nothing(const DecodeConfig&) {}

void check_gamma(const DecodeConfig& c) {
  if (c.gamma < 0) throw InputError("gamma must be >= 1, or 0 (auto)");
  if (c.gamma == DecodeConfig::kAutoGamma && (c.max_gamma < 1 || c.max_gamma > 32))
    throw InputError("max_gamma must be in [1, 32]");
}

void check_beams(const DecodeConfig& c) {
  check_gamma(c);
  if (c.width < 1) throw InputError("width must be >= 1");
}

void check_aded(const DecodeConfig& c) { check_aded_params(c.aded); }

int64_t one(const DecodeConfig&) { return 1; }
int64_t chain_room(const DecodeConfig& c) { return c.gamma + 1; }
int64_t beams_room(const DecodeConfig& c) { return c.width * c.gamma + 1; }
int64_t aded_room(const DecodeConfig& c) { return c.aded.mcts.max_nodes + 1; }

}  // namespace

const std::vector<MethodSpec>& method_specs() {
  static const std::vector<MethodSpec> specs{
      // algorithms.md 1: one target pass, one sampled token.
      {{"ar", Method::AR, false}, check_nothing, one, nullptr, accept_sample},
      // 2: the draft's chain, min(1, p/q).
      {{"sps", Method::SpS, true}, check_gamma, chain_room, make_chain_proposer, accept_sps},
      // 3.2: the top beam's chain, the joint likelihood ratio.
      {{"mtad", Method::MTAD, true}, check_beams, beams_room, make_beam_chain_proposer, accept_joint},
      // 3.3: the whole beam tree, the same ratio.
      {{"mtad-tree", Method::MTADTree, true}, check_beams, beams_room, make_beam_tree_proposer, accept_joint},
      // 4: the tri-gram MCTS trie, tree acceptance.
      {{"aded", Method::ADED, false}, check_aded, aded_room, make_aded_proposer, accept_tree},
  };
  return specs;
}

const MethodSpec& method_spec(Method m) {
  for (const MethodSpec& s : method_specs())
    if (s.info.method == m) return s;
  throw InputError("unknown method " + std::to_string(static_cast<int>(m)));
}

const std::vector<MethodInfo>& methods() {
  static const std::vector<MethodInfo> infos = [] {
    std::vector<MethodInfo> v;
    for (const MethodSpec& s : method_specs()) v.push_back(s.info);
    return v;
  }();
  return infos;
}

Method parse_method(const std::string& name) {
  std::string names;
  for (const MethodInfo& m : methods()) {
    if (name == m.name) return m.method;
    names += (names.empty() ? "" : ", ") + m.name;
  }
  throw InputError("method '" + name + "' is not one of " + names);
}

std::string method_name(Method m) { return method_spec(m).info.name; }

}  // namespace mtad
