// MTAD's drafter (algorithms.md 3.1): the draft beam-samples gamma tokens with W beams, each
// depth's beams fed as rows of one token tree. It proposes the top beam's chain (3.2) or the
// whole beam tree (3.3); either way its cache keeps the accepted nodes it fed (3.4).
#include <ATen/ATen.h>

#include <cstring>
#include <limits>

#include "decode/draft_model.h"
#include "decode/proposer.h"
#include "ops/beam_step.h"
#include "ops/to_host.h"

namespace mtad {
namespace {

// The beams of every depth on the host in one read: parents (within the depth before),
// tokens and token log-probs (as doubles, which hold every float exactly, viewed as int64 to
// share the copy), then beam_step's count of bad scores over all depths.
struct HostBeams {
  at::Tensor all;  // int64 [3 * nodes + 1]
  int64_t nodes;
  const int64_t* parent() const { return all.data_ptr<int64_t>(); }
  const int64_t* token() const { return all.data_ptr<int64_t>() + nodes; }
  double logprob(int64_t m) const {
    double x;
    std::memcpy(&x, all.data_ptr<int64_t>() + 2 * nodes + m, sizeof x);
    return x;
  }
  int64_t bad() const { return all.data_ptr<int64_t>()[3 * nodes]; }
};

HostBeams read_beams(const at::Tensor& par, const at::Tensor& tok, const at::Tensor& tlq, const at::Tensor& bad) {
  return {ops::to_host(at::cat({par, tok, tlq.to(at::kDouble).view(at::kLong), bad})), par.size(0)};
}

class BeamProposer final : public Proposer {
 public:
  BeamProposer(const ProposerArgs& a, bool whole_tree)
      : draft_(*a.draft, a.cache_capacity), c_(a.config), dev_(a.draft->device()), whole_tree_(whole_tree) {}

  void start(const std::vector<int64_t>& prompt) override { draft_.start(prompt); }

  Proposal propose(const std::vector<int64_t>& tokens, int64_t room, Rng& rng, StepStats& s) override {
    const int64_t n = static_cast<int64_t>(tokens.size());  // depth-d nodes sit at position n - 1 + d
    const SamplingParams& q = c_.draft;
    at::Tensor logits = draft_.catch_up(tokens);
    s.draft_forwards = 1;
    at::Tensor scores = at::zeros({1}, at::TensorOptions().dtype(at::kFloat).device(dev_));
    // The beams stay on the device while drafting: each depth's tokens feed the next draft
    // forward there, behind a mask of each beam's ancestors built from its parent's row
    // (node i of the tree at cache slot base + i, depth by depth). beam_step_padded gives
    // each depth a size the host knows (dead beams, -inf, after the live ones), so nothing
    // is read until the tree reaches the host in one read after the last depth.
    std::vector<at::Tensor> pars, toks, lqs;
    std::vector<int64_t> counts;  // beams per depth, dead ones included
    at::Tensor anc;               // bool [M, N]: the current beams' ancestors and themselves among the N nodes
    at::Tensor bad;               // beam_step's bad scores, summed over the depths
    int64_t N = 0;
    const auto mask_opts = at::TensorOptions().dtype(at::kBool).device(dev_);
    for (int64_t d = 1; d <= c_.gamma; ++d) {
      ops::BeamStep b = ops::beam_step_padded(logits, scores, c_.width, q.temperature, q.top_k, q.top_p,
                                              c_.with_replacement, c_.seed, rng.next());
      const int64_t M = b.token.size(0);
      pars.push_back(b.parent);
      toks.push_back(b.token);
      lqs.push_back(b.token_logprob);
      counts.push_back(M);
      bad = d == 1 ? b.bad : bad + b.bad;
      scores = b.score;
      if (d == c_.gamma) break;
      at::Tensor rows = at::zeros({M, N + M}, mask_opts);
      if (N > 0) rows.narrow(1, 0, N).copy_(anc.index_select(0, b.parent));
      rows.narrow(1, N, M).copy_(at::eye(M, mask_opts));
      anc = rows;
      N += M;
      // Every depth-d node sits at position n - 1 + d.
      logits = draft_.forward_sampled(b.token, at::full({M}, n - 1 + d, at::kLong), anc);
      ++s.draft_forwards;
    }
    const HostBeams h = read_beams(at::cat(pars), at::cat(toks), at::cat(lqs), bad);
    ops::check_beam_scores(h.bad());
    // tree_ holds every beam as the draft cache does (dead ones too); the target sees the
    // live ones only (a dead beam's token log-prob is -inf), live_[k] being node k's index in tree_.
    tree_ = DraftTree();
    live_.clear();
    DraftTree live;
    std::vector<int64_t> beams, live_beams;  // the current beams' nodes in tree_ and in live (-1: dead)
    for (size_t d = 0, i = 0; d < counts.size(); ++d) {
      std::vector<int64_t> next, next_live;
      for (int64_t m = 0; m < counts[d]; ++m, ++i) {
        const int64_t par = d == 0 ? -1 : h.parent()[i];
        const float lq = static_cast<float>(h.logprob(i));
        const bool alive = lq > -std::numeric_limits<float>::infinity();
        TORCH_CHECK(d == 0 || (par >= 0 && par < static_cast<int64_t>(beams.size()) && (!alive || live_beams[par] >= 0)),
                    "MTAD: beam ", m, " at depth ", d + 1, " has no live parent");
        next.push_back(tree_.add(d == 0 ? -1 : beams[par], h.token()[i], lq));
        next_live.push_back(alive ? live.add(d == 0 ? -1 : live_beams[par], h.token()[i], lq) : -1);
        if (alive) live_.push_back(next.back());
      }
      beams = std::move(next);
      live_beams = std::move(next_live);
    }
    // The best beam leads its depth and lives (every depth has a live beam).
    TORCH_CHECK(live_beams.front() >= 0, "MTAD: the draft left no live beam");
    Proposal p;
    best_ = tree_.path_to(beams.front());
    if (whole_tree_) {
      p.tree = std::move(live);
      p.best_leaf = live_beams.front();
    } else {
      std::vector<float> lq;
      for (int64_t x : best_) lq.push_back(tree_.logprob[x]);
      p.tree = DraftTree::chain(tree_.tokens_of(best_), lq);
      p.best_leaf = p.tree.size() - 1;
    }
    return p;
  }

  void accepted(const Proposal& p, const std::vector<int64_t>& path) override {
    std::vector<int64_t> nodes = path;  // in tree_
    for (int64_t& x : nodes) x = whole_tree_ ? live_[x] : best_[x];
    draft_.accept(tree_, nodes);
  }
  const KVCache* cache() const override { return &draft_.cache(); }

 private:
  DraftModel draft_;
  const DecodeConfig& c_;
  at::Device dev_;
  bool whole_tree_;
  DraftTree tree_;             // this step's beam tree, as the draft cache holds it (dead beams too)
  std::vector<int64_t> live_;  // the live beams' nodes in tree_ (the whole tree proposed)
  std::vector<int64_t> best_;  // the top beam's path in tree_
};

}  // namespace

std::unique_ptr<Proposer> make_beam_chain_proposer(const ProposerArgs& a) {
  return std::make_unique<BeamProposer>(a, false);
}
std::unique_ptr<Proposer> make_beam_tree_proposer(const ProposerArgs& a) {
  return std::make_unique<BeamProposer>(a, true);
}

}  // namespace mtad
