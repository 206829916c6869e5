// ADED's draft maker (algorithms.md 4), the one entry point of the decoding step and of
// TrigramTable.draft: the MCTS trie, then the context-lookup path merged into it.
#include <algorithm>

#include "mtad/aded.h"

namespace mtad {

AdedDraft aded_draft(const TrigramTable& table, const std::optional<std::array<int64_t, 2>>& state,
                     const int64_t* context, int64_t n, const AdedParams& p, int64_t lookup_len, uint64_t seed,
                     uint64_t offset, int64_t budget) {
  AdedDraft d;
  if (state) d.tree = mcts_draft(table, (*state)[0], (*state)[1], p.mcts, seed, offset, &d.stats);
  if (budget >= 0) d.tree.truncate(std::min(budget, d.tree.size()));
  d.trie_nodes = d.tree.size();
  if (lookup_len > 0) {
    d.lookup = context_lookup(context, n, lookup_len);
    d.tree.add_path(d.lookup);
  }
  return d;
}

}  // namespace mtad
