// SpS's drafter (algorithms.md 2): the draft model samples gamma tokens one after another;
// the chain goes to the target with the draft's distributions, which SpS's rule needs.
#include <ATen/ATen.h>

#include "decode/draft_model.h"
#include "decode/proposer.h"
#include "ops/sampling.h"

namespace mtad {
namespace {

class ChainProposer final : public Proposer {
 public:
  explicit ChainProposer(const ProposerArgs& a) : draft_(*a.draft, a.cache_capacity), c_(a.config) {}

  void start(const std::vector<int64_t>& prompt) override { draft_.start(prompt); }

  Proposal propose(const std::vector<int64_t>& tokens, int64_t room, Rng& rng, StepStats& s) override {
    const SamplingParams& q = c_.draft;
    // The tokens stay on the device: each feeds the next draft forward there, and the
    // acceptance rule reads the accepted ones back with its verdict (one round trip a step).
    std::vector<at::Tensor> drafted, q_rows;
    at::Tensor logits = draft_.catch_up(tokens);
    for (int64_t i = 0; i < c_.gamma; ++i) {
      at::Tensor lq = ops::normalize(logits, q.temperature, q.top_k, q.top_p);
      drafted.push_back(ops::sample(lq, c_.seed, rng.next()));
      q_rows.push_back(lq);
      // The last token is not fed: the next step's catch-up feeds it if accepted.
      if (i + 1 < c_.gamma) logits = draft_.forward_sampled(drafted.back());
    }
    s.draft_forwards = c_.gamma;
    Proposal p;
    p.tree = DraftTree::chain(std::vector<int64_t>(c_.gamma, 0));  // tokens: p.tokens
    p.tokens = at::cat(drafted, 0);
    p.draft_logprobs = at::cat(q_rows, 0);
    return p;
  }

  void accepted(const Proposal& p, const std::vector<int64_t>& path) override { draft_.accept(p.tree, path); }
  const KVCache* cache() const override { return &draft_.cache(); }

 private:
  DraftModel draft_;
  const DecodeConfig& c_;
};

}  // namespace

std::unique_ptr<Proposer> make_chain_proposer(const ProposerArgs& a) { return std::make_unique<ChainProposer>(a); }

}  // namespace mtad
