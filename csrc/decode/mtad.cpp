// MTAD (algorithms.md 3): the draft beam-samples gamma tokens with W beams run as rows of
// one token tree; the target verifies either the best beam (3.2) or the whole tree (3.3)
// by the joint likelihood ratio; both caches are compacted to the accepted path (3.4).
#include <ATen/ATen.h>

#include "decode/timer.h"
#include "mtad/decoder.h"
#include "ops/beam_step.h"
#include "ops/kv_compact.h"
#include "ops/sampling.h"
#include "ops/verify.h"

namespace mtad {
namespace {

// The draft tree, depth-major: node i sits at cache slot (tree start + i) in the draft
// and at (tree start + i) behind the fed last token in the target.
struct Tree {
  std::vector<int64_t> parent, token, depth;
  std::vector<float> lq;  // log s_parent(token) under the draft

  int64_t size() const { return static_cast<int64_t>(token.size()); }
  std::vector<int64_t> path_to(int64_t node) const {
    std::vector<int64_t> p;
    for (int64_t x = node; x >= 0; x = parent[x]) p.insert(p.begin(), x);
    return p;
  }
  // Marks node's ancestors and itself in `row` (columns = node index + shift).
  void mark(bool* row, int64_t node, int64_t shift) const {
    for (int64_t x = node; x >= 0; x = parent[x]) row[x + shift] = true;
  }
};

std::vector<int64_t> to_vec(const at::Tensor& t) {
  at::Tensor c = t.to(at::kCPU, at::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

// Moves the K/V of `slots` (ascending) to [prefix, prefix + slots.size()) and sets the length.
void compact(KVCache& cache, int64_t prefix, const std::vector<int64_t>& slots) {
  if (!slots.empty()) ops::kv_compact(cache.k, cache.v, prefix, at::tensor(slots, at::kLong).to(cache.k.device()));
  cache.length = prefix + static_cast<int64_t>(slots.size());
}

}  // namespace

std::vector<int64_t> Decoder::step_mtad(StepStats& s, bool tree_verify) {
  const auto& c = config_;
  const int64_t G = c.gamma;
  const int64_t n = static_cast<int64_t>(tokens_.size());  // depth-d nodes sit at position n - 1 + d
  const auto dev = target_.device();
  Tree tree;
  std::vector<int64_t> beams;  // node indices of the current beams
  {
    ScopedTimer t(s.draft_s);
    at::Tensor logits = draft_catch_up();
    s.draft_forwards = 1;
    at::Tensor scores = at::zeros({1}, at::TensorOptions().dtype(at::kFloat).device(dev));
    for (int64_t d = 1; d <= G; ++d) {
      auto [par, tok, tlq, score] = ops::beam_step(logits, scores, c.width, c.draft.temperature, c.draft.top_k,
                                                   c.draft.top_p, c.with_replacement, c.seed, next_offset());
      const std::vector<int64_t> par_h = to_vec(par), tok_h = to_vec(tok);
      at::Tensor lq_h = tlq.to(at::kCPU).contiguous();
      std::vector<int64_t> next;
      for (size_t m = 0; m < tok_h.size(); ++m) {
        next.push_back(tree.size());
        tree.parent.push_back(d == 1 ? -1 : beams[par_h[m]]);
        tree.token.push_back(tok_h[m]);
        tree.depth.push_back(d);
        tree.lq.push_back(lq_h.data_ptr<float>()[m]);
      }
      beams = std::move(next);
      scores = score;
      if (d == G) break;
      // The new beams as tree rows: each sees the prefix, its ancestors and itself.
      const int64_t M = static_cast<int64_t>(beams.size()), region = tree.size();
      at::Tensor mask = at::zeros({M, region}, at::kBool);
      std::vector<int64_t> ids;
      for (int64_t m = 0; m < M; ++m) {
        tree.mark(mask.data_ptr<bool>() + m * region, beams[m], 0);
        ids.push_back(tree.token[beams[m]]);
      }
      logits = draft_->forward(dcache_, at::tensor(ids, at::kLong), at::full({M}, n - 1 + d, at::kLong), mask,
                               at::Tensor());
      ++s.draft_forwards;
    }
  }
  // Beams come out best first: the draft is the top beam's path.
  const std::vector<int64_t> best = tree.path_to(beams.front());
  std::vector<float> best_lq;
  for (int64_t x : best) best_lq.push_back(tree.lq[x]);

  ops::VerifyResult v;
  std::vector<int64_t> accepted;  // node indices of the accepted path
  {
    ScopedTimer t(s.verify_s);
    std::vector<int64_t> ids{tokens_.back()}, parents, toks;
    at::Tensor positions, mask;
    if (tree_verify) {
      const int64_t N = tree.size();
      mask = at::zeros({N + 1, N + 1}, at::kBool);
      bool* m = mask.data_ptr<bool>();
      m[0] = true;
      std::vector<int64_t> pos{n - 1};
      for (int64_t i = 0; i < N; ++i) {
        m[(i + 1) * (N + 1)] = true;  // the fed last token
        tree.mark(m + (i + 1) * (N + 1), i, 1);
        ids.push_back(tree.token[i]);
        pos.push_back(n - 1 + tree.depth[i]);
      }
      positions = at::tensor(pos, at::kLong);
      parents = tree.parent;
      toks = tree.token;
    } else {
      for (size_t i = 0; i < best.size(); ++i) {
        ids.push_back(tree.token[best[i]]);
        parents.push_back(static_cast<int64_t>(i) - 1);
        toks.push_back(tree.token[best[i]]);
      }
    }
    at::Tensor logits = target_.forward(tcache_, at::tensor(ids, at::kLong), positions, mask, at::Tensor());
    s.target_forwards = 1;
    v = ops::verify(logits, at::tensor(parents, at::kLong).to(dev), at::tensor(toks, at::kLong).to(dev),
                    at::tensor(best_lq, at::kFloat).to(dev), c.tau, c.target.temperature, c.target.top_k,
                    c.target.top_p, c.seed, next_offset());
    const std::vector<int64_t> path = to_vec(v.path);
    for (int64_t x : path) accepted.push_back(tree_verify ? x : best[x]);
  }
  {
    ScopedTimer t(s.rollback_s);
    const int64_t a = v.accept_len;
    // Target: the verified tokens sit behind the fed last token (slot n - 1).
    std::vector<int64_t> tslots, dslots;
    for (int64_t i = 0; i < a; ++i) tslots.push_back(n + (tree_verify ? accepted[i] : i));
    compact(tcache_, n, tslots);
    // Draft: it fed the nodes of depths 1..G-1 as tree rows right after the committed tokens.
    for (int64_t i = 0; i < std::min(a, G - 1); ++i) dslots.push_back(n + accepted[i]);
    compact(dcache_, n, dslots);
  }
  s.drafted = tree_verify ? tree.size() : G;
  s.accepted = v.accept_len;
  std::vector<int64_t> out;
  for (int64_t x : accepted) out.push_back(tree.token[x]);
  out.push_back(v.bonus_token);
  return out;
}

}  // namespace mtad
