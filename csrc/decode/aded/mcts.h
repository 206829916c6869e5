// The MCTS draft maker of ADED (algorithms.md 4): the search tree over the tri-gram table
// and the draft trie made from its most visited paths. mtad::mcts_draft (mtad/aded.h)
// runs one Search; the class is here for code that wants the search tree itself.
#pragma once

#include <cstdint>
#include <vector>

#include "mtad/aded.h"

namespace mtad::aded {

struct SearchNode {
  int64_t token = -1;    // the drafted token (-1 at the root)
  int64_t parent = -1;   // -1 at the root
  int64_t depth = 0;     // drafted tokens from the root to here
  int64_t a = 0, b = 0;  // the state after this node: its last two tokens
  float prior = 0.f;     // table value of token in the parent's row
  int64_t first_child = -1, num_children = 0;  // children are contiguous
  bool expanded = false;
  int64_t visits = 0;
  double reward = 0.0;  // summed over visits; Q = reward / visits
};

class Search {
 public:
  // The table must not change while the search lives.
  Search(const TrigramTable& table, int64_t a, int64_t b, const MctsParams& p, uint64_t seed, uint64_t offset);

  void run();  // p.simulations simulations
  const std::vector<SearchNode>& nodes() const { return nodes_; }
  int64_t rollout_tokens() const { return rollout_tokens_; }
  // The draft trie: paths ranked by visits, the best p.paths kept, extended by the table's
  // argmax, de-duplicated, at most p.max_nodes nodes.
  DraftTree trie() const;

 private:
  void simulate();
  void expand(int64_t node);
  int64_t select_child(int64_t node) const;
  double step_value(int64_t a, int64_t b, int64_t token, float table_value) const;
  std::vector<int64_t> path_tokens(int64_t node) const;

  const TrigramTable& table_;
  MctsParams p_;
  uint64_t seed_, counter_;
  std::vector<SearchNode> nodes_;
  int64_t rollout_tokens_ = 0;
};

}  // namespace mtad::aded
