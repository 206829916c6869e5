// ADED's decoding step (algorithms.md 4): adapt the table, draft a token trie by MCTS,
// verify the whole trie in one target pass under a tree mask, accept the longest agreeing
// path (greedy) or sample losslessly over the trie, and compact the target cache.
#include <ATen/ATen.h>

#include <algorithm>

#include "decode/timer.h"
#include "mtad/aded.h"
#include "mtad/decoder.h"
#include "mtad/errors.h"
#include "ops/kv_compact.h"
#include "ops/sampling.h"
#include "ops/tree_accept.h"

namespace mtad {

void Decoder::set_trigram_table(std::shared_ptr<TrigramTable> table) {
  if (config_.method != Method::ADED)
    throw InputError("set_trigram_table: the decoder runs " + method_name(config_.method) + ", not aded");
  if (!table) throw InputError("set_trigram_table: the table is null");
  if (table->vocab_size() != target_.config().vocab_size)
    throw InputError("set_trigram_table: the table's vocabulary (" + std::to_string(table->vocab_size()) +
                     ") differs from the target's (" + std::to_string(target_.config().vocab_size) + ")");
  trigram_ = std::move(table);
}

void Decoder::set_aded_params(const AdedParams& params) {
  check_aded_params(params);
  config_.aded = params;
}

std::vector<int64_t> Decoder::step_aded(StepStats& s) {
  const auto& c = config_;
  const int64_t n = static_cast<int64_t>(tokens_.size());
  const auto dev = target_.device();
  DraftTrie trie;
  std::vector<int64_t> lookup_path;
  {
    ScopedTimer t(s.draft_s);
    TrigramTable& table = *trigram_;
    const auto lock = table.lock();  // the table may be shared with other decoders
    if (c.aded.adapt) {
      TrigramParams p = c.aded.table;
      if (c.aded.adapt_prompt && total_.target_forwards == 0) p.window = n;  // the first step: the prompt
      table.adapt(tokens_.data(), n, p);
    }
    // The root state is the last two committed tokens: none with a one-token sequence.
    if (n >= 2) trie = mcts_draft(table, tokens_[n - 2], tokens_[n - 1], c.aded.mcts, c.seed, next_offset());
    if (c.aded.lookup > 0) {
      // The path's length adapts: +2 after a step that accepted all of it, -1 after one
      // that did not (a copied run goes on; a chance match costs few rows).
      lookup_len_ = std::clamp<int64_t>(lookup_len_ <= 0 ? c.aded.lookup : lookup_len_, 1, c.aded.lookup);
      lookup_path = context_lookup(tokens_.data(), n, lookup_len_);
      add_path(trie, lookup_path);
    }
    // The cache holds what it was made for; params set later may ask for more nodes.
    // Nodes come parents first, so a prefix of them is a trie.
    const int64_t room = std::max<int64_t>(0, tcache_.capacity() - n);
    if (trie.size() > room) {
      trie.parent.resize(room);
      trie.token.resize(room);
      trie.depth.resize(room);
    }
  }
  const int64_t N = trie.size();
  ops::TreeAcceptResult r;
  {
    ScopedTimer t(s.verify_s);
    // Row 0 is the fed last committed token (slot n - 1); node i sits at slot n + i and
    // sees the prefix, the fed token, its ancestors and itself.
    std::vector<int64_t> ids{tokens_.back()}, pos{n - 1};
    at::Tensor mask;
    if (N > 0) {
      mask = at::zeros({N + 1, N + 1}, at::kBool);
      bool* m = mask.data_ptr<bool>();
      m[0] = true;
      for (int64_t i = 0; i < N; ++i) {
        bool* row = m + (i + 1) * (N + 1);
        row[0] = true;
        for (int64_t x = i; x >= 0; x = trie.parent[x]) row[x + 1] = true;
        ids.push_back(trie.token[i]);
        pos.push_back(n - 1 + trie.depth[i]);
      }
    }
    const at::Tensor logits = target_.forward(tcache_, at::tensor(ids, at::kLong),
                                              N > 0 ? at::tensor(pos, at::kLong) : at::Tensor(), mask, at::Tensor());
    s.target_forwards = 1;
    const at::Tensor par = at::tensor(trie.parent, at::kLong).to(dev), tok = at::tensor(trie.token, at::kLong).to(dev);
    if (c.target.temperature == 0) {
      r = ops::tree_accept(logits, par, tok);
    } else {
      const at::Tensor lp = ops::normalize(logits, c.target.temperature, c.target.top_k, c.target.top_p);
      r = ops::tree_sample(lp, par, tok, c.seed, next_offset());
    }
  }
  std::vector<int64_t> out;
  {
    ScopedTimer t(s.rollback_s);
    const at::Tensor path = r.path.contiguous();
    const int64_t* p = path.data_ptr<int64_t>();
    std::vector<int64_t> slots;
    for (int64_t i = 0; i < r.accept_len; ++i) {
      slots.push_back(n + p[i]);
      out.push_back(trie.token[p[i]]);
    }
    if (!slots.empty()) ops::kv_compact(tcache_.k, tcache_.v, n, at::tensor(slots, at::kLong).to(dev));
    tcache_.length = n + r.accept_len;
  }
  if (!lookup_path.empty()) {
    size_t same = 0;
    while (same < lookup_path.size() && same < out.size() && out[same] == lookup_path[same]) ++same;
    lookup_len_ = same == lookup_path.size() ? lookup_len_ + 2 : std::max<int64_t>(1, lookup_len_ - 1);
  }
  s.drafted = N;
  s.accepted = r.accept_len;
  out.push_back(r.next_token);
  return out;
}

}  // namespace mtad
