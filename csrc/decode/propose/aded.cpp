// ADED's drafter (algorithms.md 4): adapt the tri-gram table to the text so far, then
// aded_draft (MCTS over the table, plus the context-lookup path when enabled), cut to the
// room the target cache has. The lookup path's length follows its acceptance; with
// auto_nodes the trie's node budget follows the acceptance per rank (decode/tree_budget.h).
#include <algorithm>
#include <memory>

#include "decode/draft_length.h"
#include "decode/proposer.h"
#include "decode/tree_budget.h"
#include "mtad/aded.h"

namespace mtad {
namespace {

class AdedProposer final : public Proposer {
 public:
  explicit AdedProposer(const ProposerArgs& a) : c_(a.config), target_(a.target), table_(a.table) {
    table_ = std::make_shared<TrigramTable>(a.target.config().vocab_size);
  }

  void start(const std::vector<int64_t>& prompt) override {
    first_step_ = true;
    lookup_len_ = 0;  // a new sequence starts from the configured lookup length
    if (budget_) budget_->reset();
  }

  Proposal propose(const std::vector<int64_t>& tokens, int64_t room, Rng& rng, StepStats& s) override {
    const AdedParams& p = c_.aded;
    const int64_t n = static_cast<int64_t>(tokens.size());
    TrigramTable& table = *table_;
    const auto lock = table.lock();  // the table may be shared with other decoders
    if (p.adapt) {
      TrigramParams tp = p.table;
      if (p.adapt_prompt && first_step_) tp.window = n;  // the first step: the prompt
      table.adapt(tokens.data(), n, tp);
    }
    first_step_ = false;
    // The path's length adapts: +2 after a step that accepted all of it, -1 after one
    // that did not (a copied run goes on; a chance match costs few rows).
    if (p.lookup > 0) lookup_len_ = std::clamp<int64_t>(lookup_len_ <= 0 ? p.lookup : lookup_len_, 1, p.lookup);
    // The root state is the last two committed tokens: none with a one-token sequence.
    std::optional<std::array<int64_t, 2>> state;
    if (n >= 2) state = std::array<int64_t, 2>{tokens[n - 2], tokens[n - 1]};
    const int64_t lookup_len = p.lookup > 0 ? lookup_len_ : 0;
    int64_t budget = -1;  // the whole trie
    if (p.auto_nodes) budget = choose_budget(lookup_len);
    // A budget of 0 skips the search (its random draw is still taken: the stream stays in step).
    const uint64_t offset = state ? rng.next() : 0;
    AdedDraft d = aded_draft(table, budget == 0 ? std::nullopt : state, tokens.data(), n, p, lookup_len, c_.seed,
                             offset, budget);
    lookup_ = std::move(d.lookup);
    budget_used_ = budget;
    trie_nodes_ = d.trie_nodes;
    // The cache holds what it was made for; params set later may ask for more nodes.
    d.tree.truncate(std::max<int64_t>(0, room));
    Proposal out;
    out.tree = std::move(d.tree);
    return out;
  }

  void accepted(const Proposal& p, const std::vector<int64_t>& path) override {
    if (budget_used_ >= 0 && budget_) {
      // Which of the trie's nodes (the first trie_nodes_; lookup nodes follow) were accepted.
      std::vector<bool> hit(static_cast<size_t>(std::min(trie_nodes_, p.tree.size())), false);
      for (int64_t node : path)
        if (node < static_cast<int64_t>(hit.size())) hit[static_cast<size_t>(node)] = true;
      budget_->observe(budget_used_, hit);
    }
    if (lookup_.empty()) return;
    const std::vector<int64_t> got = p.tree.tokens_of(path);
    size_t same = 0;
    while (same < lookup_.size() && same < got.size() && got[same] == lookup_[same]) ++same;
    lookup_len_ = same == lookup_.size() ? lookup_len_ + 2 : std::max<int64_t>(1, lookup_len_ - 1);
  }

 private:
  // The controller for the configured largest budget and lookup length (made when first
  // needed: parameters can change between sequences); its cost table is measured once per
  // model.
  int64_t choose_budget(int64_t lookup_len) {
    const AdedParams& p = c_.aded;
    if (!budget_ || budget_->max_nodes() != p.mcts.max_nodes || budget_rows_ != p.mcts.max_nodes + p.lookup) {
      if (p.mcts.max_nodes == 0) return 0;
      budget_rows_ = p.mcts.max_nodes + p.lookup;
      budget_ = std::make_unique<TreeBudget>(verify_costs(target_, budget_rows_, 1), p.mcts.max_nodes);
    }
    return budget_->next(lookup_len);
  }

  const DecodeConfig& c_;
  Model& target_;
  std::shared_ptr<TrigramTable>& table_;  // the decoder's: set_trigram_table may replace it
  bool first_step_ = true;
  int64_t lookup_len_ = 0;       // the context-lookup path's length now (0: start anew)
  std::vector<int64_t> lookup_;  // this step's lookup path
  std::unique_ptr<TreeBudget> budget_;
  int64_t budget_rows_ = 0;   // the rows budget_'s cost table covers
  int64_t budget_used_ = -1;  // this step's budget (-1: fixed by max_nodes)
  int64_t trie_nodes_ = 0;    // this step's trie nodes (before the lookup path)
};

}  // namespace

std::unique_ptr<Proposer> make_aded_proposer(const ProposerArgs& a) { return std::make_unique<AdedProposer>(a); }

}  // namespace mtad
