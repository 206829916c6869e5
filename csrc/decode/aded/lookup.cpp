// ADED's context-lookup extension (mtad/aded.h, AdedParams::lookup): a draft path copied
// from the context, merged into the MCTS trie (aded_draft) so that one verification pass
// scores both.
#include <algorithm>

#include "mtad/aded.h"

namespace mtad {

std::vector<int64_t> context_lookup(const int64_t* tokens, int64_t n, int64_t max_tokens, int64_t max_ngram) {
  for (int64_t g = std::min(max_ngram, n - 1); g >= 2; --g) {
    const int64_t* pattern = tokens + n - g;
    // The latest match with max_tokens after it (recent text predicts best), else the
    // match with the most: in a run of one repeated token the latest is right before the end.
    int64_t best = -1, best_len = 0;
    for (int64_t i = n - g - 1; i >= 0 && best_len < max_tokens; --i) {
      if (!std::equal(pattern, pattern + g, tokens + i)) continue;
      const int64_t len = std::min(max_tokens, n - i - g);
      if (len > best_len) best = i, best_len = len;
    }
    if (best >= 0) return std::vector<int64_t>(tokens + best + g, tokens + best + g + best_len);
  }
  return {};
}

}  // namespace mtad
