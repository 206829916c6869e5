// One decoding step of any method over a target (and draft) model: the C++ API a custom
// runtime drives. Semantics: algorithms.md sections 1-5. Every step is: a drafter proposes
// a token tree (none for AR, a chain for SpS and MTAD), the target runs over it in one
// pass, the method's rule accepts a path of it, both caches keep that path.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "mtad/aded.h"
#include "mtad/model.h"

namespace mtad {

struct SamplingParams {
  double temperature = 1.0;  // 0: greedy
  int64_t top_k = 10;        // 0: keep all
  double top_p = 0.9;        // 0 or 1: keep all
};

enum class Method { AR, SpS, MTAD, MTADTree, ADED };

struct MethodInfo {
  std::string name;  // "ar", "sps", "mtad", "mtad-tree", "aded"
  Method method;
  bool needs_draft;  // runs a draft model
};
// Every method, from the one method table (decode/methods.cpp).
const std::vector<MethodInfo>& methods();
// A name of methods(); throws InputError otherwise.
Method parse_method(const std::string& name);
std::string method_name(Method m);

struct DecodeConfig {
  Method method = Method::AR;
  SamplingParams target;
  SamplingParams draft;
  int64_t gamma = 4;              // draft length; kAutoGamma: chosen per step (below)
  // With gamma = kAutoGamma the SpS and MTAD drafters draft 0 (a plain AR step) to max_gamma
  // tokens per step, whichever promises the most tokens per second from the step costs
  // measured on this machine (Model::forward_seconds) and the acceptance so far.
  static constexpr int64_t kAutoGamma = 0;
  int64_t max_gamma = 8;
  int64_t width = 4;              // MTAD beam width W
  double tau = 0.5;               // MTAD acceptance threshold
  bool with_replacement = false;  // MTAD beam sampling
  uint64_t seed = 0;
  AdedParams aded;  // ADED: table adaptation and MCTS (algorithms.md 4)
};

// Counters of one step (or, summed, of a whole generation).
struct StepStats {
  int64_t emitted = 0;          // tokens this step appended
  int64_t drafted = 0;          // draft tokens put before the target
  int64_t accepted = 0;         // draft tokens the target accepted
  int64_t target_forwards = 0;
  int64_t draft_forwards = 0;
  double draft_s = 0, verify_s = 0, rollback_s = 0, other_s = 0;
  int64_t host_reads = 0;       // device-to-host reads (on a GPU: synchronisations) the step made
  StepStats& operator+=(const StepStats& o);
};

class Proposer;
class DraftLength;
struct MethodSpec;

class Decoder {
 public:
  // `draft` may be null for a method that needs none; the models must outlive the
  // decoder. `capacity` is the longest sequence (prompt + generated) the caches hold.
  Decoder(Model& target, Model* draft, DecodeConfig config, int64_t capacity);
  ~Decoder();
  // Its drafter refers to the decoder's configuration and table: it stays in place.
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  // Starts a new sequence with `prompt` (at least one token).
  void start(const std::vector<int64_t>& prompt);
  // One step of the configured method: appends the emitted tokens (at least one) to
  // tokens() and returns them. Throws InputError when the caches would overflow.
  std::vector<int64_t> step();

  const std::vector<int64_t>& tokens() const { return tokens_; }
  const StepStats& last() const { return last_; }
  const StepStats& total() const { return total_; }
  // Under gamma auto, config().gamma is the draft length of the last step (0: an AR step).
  const DecodeConfig& config() const { return config_; }
  bool auto_gamma() const { return auto_gamma_; }
  const KVCache& target_cache() const { return tcache_; }
  const KVCache* draft_cache() const;
  // Room a step of this method needs beyond the committed tokens.
  int64_t step_headroom() const;

  // ADED: the tri-gram table the decoder drafts from and adapts. It persists across
  // start() calls; several decoders may share one. The decoder makes an empty table when
  // none is given. Throws InputError if its vocabulary is not the target's.
  void set_trigram_table(std::shared_ptr<TrigramTable> table);
  const std::shared_ptr<TrigramTable>& trigram_table() const { return trigram_; }
  // Replaces the ADED parameters (validated; a larger node budget shortens the capacity).
  void set_aded_params(const AdedParams& params);

 private:
  Model& target_;
  const MethodSpec* spec_;
  DecodeConfig config_;
  KVCache tcache_;
  std::shared_ptr<TrigramTable> trigram_;  // ADED only
  std::unique_ptr<Proposer> proposer_;     // null: no draft (AR)
  std::unique_ptr<DraftLength> draft_length_;  // gamma auto only
  bool auto_gamma_ = false;
  std::vector<int64_t> tokens_;
  StepStats last_, total_;
  uint64_t calls_ = 0;  // random draws so far in this sequence
};

}  // namespace mtad
