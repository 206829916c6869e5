// MTAD's drafter (algorithms.md 3.1): the draft beam-samples gamma tokens with W beams, each
// depth's beams fed as rows of one token tree. It proposes the top beam's chain (3.2) or the
// whole beam tree (3.3); either way its cache keeps the accepted nodes it fed (3.4).
#include <ATen/ATen.h>

#include <cstring>

#include "decode/draft_model.h"
#include "decode/proposer.h"
#include "ops/beam_step.h"
#include "ops/to_host.h"

namespace mtad {
namespace {

// The beams of every depth on the host in one read: parents (within the depth before),
// tokens and token log-probs (as doubles, which hold every float exactly, viewed as int64 to
// share the copy).
struct HostBeams {
  at::Tensor all;  // int64 [3, nodes]
  const int64_t* parent() const { return all.data_ptr<int64_t>(); }
  const int64_t* token() const { return all.data_ptr<int64_t>() + all.size(1); }
  float logprob(int64_t m) const {
    double x;
    std::memcpy(&x, all.data_ptr<int64_t>() + 2 * all.size(1) + m, sizeof x);
    return static_cast<float>(x);
  }
};

HostBeams read_beams(const at::Tensor& par, const at::Tensor& tok, const at::Tensor& tlq) {
  return {ops::to_host(at::stack({par, tok, tlq.to(at::kDouble).view(at::kLong)}))};
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
    // (node i of the tree at cache slot base + i, depth by depth). The tree reaches the host
    // in one read after the last depth; beam_step's own read (how many beams live) remains.
    std::vector<at::Tensor> pars, toks, lqs;
    std::vector<int64_t> counts;  // beams per depth
    at::Tensor anc;               // bool [M, N]: the current beams' ancestors and themselves among the N nodes
    int64_t N = 0;
    const auto mask_opts = at::TensorOptions().dtype(at::kBool).device(dev_);
    for (int64_t d = 1; d <= c_.gamma; ++d) {
      auto [par, tok, tlq, score] = ops::beam_step(logits, scores, c_.width, q.temperature, q.top_k, q.top_p,
                                                   c_.with_replacement, c_.seed, rng.next());
      const int64_t M = tok.size(0);
      pars.push_back(par);
      toks.push_back(tok);
      lqs.push_back(tlq);
      counts.push_back(M);
      scores = score;
      if (d == c_.gamma) break;
      at::Tensor rows = at::zeros({M, N + M}, mask_opts);
      if (N > 0) rows.narrow(1, 0, N).copy_(anc.index_select(0, par));
      rows.narrow(1, N, M).copy_(at::eye(M, mask_opts));
      anc = rows;
      N += M;
      // Every depth-d node sits at position n - 1 + d.
      logits = draft_.forward_sampled(tok, at::full({M}, n - 1 + d, at::kLong), anc);
      ++s.draft_forwards;
    }
    const HostBeams h = read_beams(at::cat(pars), at::cat(toks), at::cat(lqs));
    tree_ = DraftTree();
    std::vector<int64_t> beams;  // nodes of the current beams, best first
    for (size_t d = 0, i = 0; d < counts.size(); ++d) {
      std::vector<int64_t> next;
      for (int64_t m = 0; m < counts[d]; ++m, ++i)
        next.push_back(tree_.add(d == 0 ? -1 : beams[h.parent()[i]], h.token()[i], h.logprob(i)));
      beams = std::move(next);
    }
    Proposal p;
    best_ = tree_.path_to(beams.front());
    if (whole_tree_) {
      p.tree = tree_;
      p.best_leaf = beams.front();
    } else {
      std::vector<float> lq;
      for (int64_t x : best_) lq.push_back(tree_.logprob[x]);
      p.tree = DraftTree::chain(tree_.tokens_of(best_), lq);
      p.best_leaf = p.tree.size() - 1;
    }
    return p;
  }

  void accepted(const Proposal& p, const std::vector<int64_t>& path) override {
    std::vector<int64_t> nodes = path;  // in the beam tree
    if (!whole_tree_)
      for (int64_t& x : nodes) x = best_[x];
    draft_.accept(tree_, nodes);
  }
  const KVCache* cache() const override { return &draft_.cache(); }

 private:
  DraftModel draft_;
  const DecodeConfig& c_;
  at::Device dev_;
  bool whole_tree_;
  DraftTree tree_;            // this step's beam tree, as the draft cache holds it
  std::vector<int64_t> best_;  // the top beam's path in it
};

}  // namespace

std::unique_ptr<Proposer> make_beam_chain_proposer(const ProposerArgs& a) {
  return std::make_unique<BeamProposer>(a, false);
}
std::unique_ptr<Proposer> make_beam_tree_proposer(const ProposerArgs& a) {
  return std::make_unique<BeamProposer>(a, true);
}

}  // namespace mtad
