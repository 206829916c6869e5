// The self-tuning node budget of ADED's draft trie (AdedParams::auto_nodes, `--max-nodes
// auto`). The trie's nodes come best first and any prefix of them is the trie a smaller
// budget would have made (aded::Search::trie), so a step that verified n nodes tells, for
// each rank i < n, whether the i-th node was accepted: its acceptance depends only on nodes
// of lower rank (its ancestors, and for tree sampling its earlier siblings). The controller
// keeps a decayed acceptance per rank and picks the budget of the highest expected tokens
// per second,
//     rate(n) = (1 + p_0 + ... + p_{n-1}) / verify_cost(n + extra),
// extra being the rows added on top of the budget (the context-lookup path, drafted at any
// budget when enabled). Budget 0 without extra rows is an AR step. Ranks the chosen budget leaves out keep their last estimate; probes (decode/
// probe_schedule.h) try a larger budget now and then to refresh them. As with the draft
// length, decisions depend on the measured cost table and on what was accepted, never on
// the clock during decoding, so a seed repeats its tokens.
#pragma once

#include <cstdint>
#include <vector>

#include "decode/probe_schedule.h"

namespace mtad {

class TreeBudget {
 public:
  // verify_seconds[r]: a target pass over r draft rows plus the last committed token
  // (r = 0..max_nodes + the most extra rows); max_nodes: the largest budget.
  TreeBudget(std::vector<double> verify_seconds, int64_t max_nodes);

  // A new sequence: back to the starting estimates.
  void reset();
  // The budget of the next step (0: no draft) when `extra` rows come on top of it.
  int64_t next(int64_t extra);
  // What a step of budget `budget` got: accepted[i] for each of the trie's first nodes
  // (as many as it had, at most the budget).
  void observe(int64_t budget, const std::vector<bool>& accepted);

  double acceptance(int64_t rank) const { return hits_[rank] / tries_[rank]; }
  double rate(int64_t budget, int64_t extra) const;
  int64_t max_nodes() const { return static_cast<int64_t>(hits_.size()); }

 private:
  int64_t best(int64_t extra) const;

  std::vector<double> verify_;
  std::vector<double> hits_, tries_;  // decayed, per rank
  ProbeSchedule probes_;
  int64_t probe_budget_ = 0;  // the budget of the probe under way
  int64_t probe_extra_ = 0;   // and its extra rows
  int64_t best_before_ = 0;   // the choice the probe challenged
};

}  // namespace mtad
