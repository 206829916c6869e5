// What proposes drafts, apart from what accepts them (decode/accept.h): a proposer turns the
// committed tokens into a draft tree for the target to verify, and keeps its own state (a
// draft model's cache, a table's adaptation) in step with what the target accepted.
// A new drafter is one Proposer and a row in decode/methods.cpp.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "mtad/decoder.h"
#include "mtad/draft_tree.h"

namespace mtad {

// The step's random offsets: every draw of a step takes the next 2^32 block of the stream
// (seed, offset), in the order the step makes them (algorithms.md 0).
struct Rng {
  uint64_t seed = 0;
  uint64_t calls = 0;
  uint64_t next() { return (calls++) << 32; }
};

struct Proposal {
  DraftTree tree;             // what the target verifies, below the last committed token
  at::Tensor draft_logprobs;  // SpS: the draft's normalised log-probs at each node [N, V]
  int64_t best_leaf = -1;     // MTAD: the top beam's last node; its path is the draft (3.2)
  // SpS: the chain's tokens on the device, where the draft sampled them (never read back
  // inside the step: tree.token holds placeholders; the rule reads the accepted ones).
  at::Tensor tokens;
};

class Proposer {
 public:
  virtual ~Proposer() = default;
  // A new sequence: `prompt` is committed; its last token is fed by the first step.
  virtual void start(const std::vector<int64_t>& prompt) = 0;
  // A draft below tokens.back() of at most `room` nodes (the target cache's free slots).
  virtual Proposal propose(const std::vector<int64_t>& tokens, int64_t room, Rng& rng, StepStats& s) = 0;
  // The target accepted `path` (nodes of p.tree, root first): drop what it rejected.
  virtual void accepted(const Proposal& p, const std::vector<int64_t>& path) = 0;
  virtual const KVCache* cache() const { return nullptr; }
};

// What a proposer is made from. `config` and `table` belong to the decoder and outlive it.
struct ProposerArgs {
  Model& target;
  Model* draft;
  const DecodeConfig& config;
  int64_t cache_capacity;               // slots of a draft cache (the target's too)
  std::shared_ptr<TrigramTable>& table;  // ADED: the decoder's table (the proposer makes it)
};

// The draft model's sampled chain (SpS, algorithms.md 2).
std::unique_ptr<Proposer> make_chain_proposer(const ProposerArgs& a);
// The draft model's beam tree (MTAD, 3.1): the top beam's chain (3.2) or the whole tree (3.3).
std::unique_ptr<Proposer> make_beam_chain_proposer(const ProposerArgs& a);
std::unique_ptr<Proposer> make_beam_tree_proposer(const ProposerArgs& a);
// ADED's tri-gram MCTS plus context lookup (4).
std::unique_ptr<Proposer> make_aded_proposer(const ProposerArgs& a);

}  // namespace mtad
