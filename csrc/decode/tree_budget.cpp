#include "decode/tree_budget.h"

#include <algorithm>
#include <string>
#include <utility>

#include "mtad/errors.h"

namespace mtad {
namespace {

// Weight of the past per observation of a rank: its estimate follows the last ~10 steps.
constexpr double kDecay = 0.9;
// Start: rank i accepted with probability 0.5 / (1 + i) (a trie's later nodes are ever less
// likely), with the weight of half a step, so that one step's evidence outweighs the guess.
// Where extra rows cost little (a GPU) the first step drafts the full budget; on a CPU a few
// nodes, growing by probes, rather than a 64-node pass at every sequence's start.
constexpr double kPriorTries = 0.5, kPriorAcceptance = 0.5;

}  // namespace

TreeBudget::TreeBudget(std::vector<double> verify_seconds, int64_t max_nodes)
    : verify_(std::move(verify_seconds)) {
  if (max_nodes < 1 || static_cast<int64_t>(verify_.size()) < max_nodes + 1)
    throw InputError("the automatic node budget needs a cost for 0.." + std::to_string(max_nodes) + " nodes");
  hits_.resize(static_cast<size_t>(max_nodes));
  tries_.resize(static_cast<size_t>(max_nodes));
  reset();
}

void TreeBudget::reset() {
  for (size_t i = 0; i < hits_.size(); ++i) {
    tries_[i] = kPriorTries;
    hits_[i] = kPriorTries * kPriorAcceptance / double(i + 1);
  }
  probes_.reset();
  probe_budget_ = probe_extra_ = best_before_ = 0;
}

double TreeBudget::rate(int64_t budget, int64_t extra) const {
  if (budget < 0 || budget > max_nodes() || extra < 0)
    throw InputError("TreeBudget::rate: budget must be in [0, " + std::to_string(max_nodes()) +
                     "] and extra >= 0");
  double expected = 1.0;
  for (int64_t i = 0; i < budget; ++i) expected += acceptance(i);
  const int64_t rows = std::min<int64_t>(budget + extra, static_cast<int64_t>(verify_.size()) - 1);
  return expected / verify_[rows];
}

int64_t TreeBudget::best(int64_t extra) const {
  // rate(n, extra), its expected tokens summed as n grows (this runs every step).
  const int64_t last_row = static_cast<int64_t>(verify_.size()) - 1;
  int64_t best = 0;
  double expected = 1.0;
  double best_rate = expected / verify_[std::min(extra, last_row)];  // the extra rows alone (none: AR)
  for (int64_t n = 1; n <= max_nodes(); ++n) {
    expected += acceptance(n - 1);
    if (const double r = expected / verify_[std::min(n + extra, last_row)]; r > best_rate) best = n, best_rate = r;
  }
  return best;
}

int64_t TreeBudget::next(int64_t extra) {
  const int64_t b = best(extra);
  // A probe: twice the budget (one node when AR steps are chosen), to learn whether the
  // ranks it leaves out would pay now.
  const int64_t larger = std::min(std::max<int64_t>(1, 2 * b), max_nodes());
  if (larger == b || !probes_.due()) {
    if (larger == b) probes_.skip();
    return b;
  }
  probe_budget_ = larger;
  probe_extra_ = extra;
  best_before_ = b;
  return larger;
}

void TreeBudget::observe(int64_t budget, const std::vector<bool>& accepted) {
  const size_t n = std::min({accepted.size(), static_cast<size_t>(std::max<int64_t>(budget, 0)), hits_.size()});
  for (size_t i = 0; i < n; ++i) {
    hits_[i] = kDecay * hits_[i] + (accepted[i] ? 1.0 : 0.0);
    tries_[i] = kDecay * tries_[i] + 1.0;
  }
  if (probes_.probing() && budget == probe_budget_) probes_.answered(best(probe_extra_) != best_before_);
}

}  // namespace mtad
