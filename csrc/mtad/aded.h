// ADED (algorithms.md 4): model-free drafting from an adaptive tri-gram table searched by
// MCTS, verified as a token trie in one target pass. The public C++ API: the table (build,
// adapt, save, load), the draft maker (a DraftTree), and their parameters with the
// documented defaults.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "mtad/draft_tree.h"

namespace mtad {

// Successors kept per context when a table is finalised or loaded (algorithms.md 4).
inline constexpr int64_t kDefaultMaxSuccessors = 12;

// Adaptation of the table.
struct TrigramParams {
  int64_t window = 16;      // adaptation looks at the last `window` committed tokens
  double increment = 0.04;  // added to every tri-gram occurring there (created if absent)
  double cap = 3.0;         // an adapted value never exceeds this
};

enum class MctsReward {
  Table,   // 1 + sum of the table value of each chosen next token (the default)
  Public,  // the public code's reward: each value looked up in the row after the move,
           // usually empty, so the reward is nearly constant (offered for comparison)
};

struct MctsParams {
  int64_t simulations = 150;
  int64_t depth = 3;  // drafted tokens below the root on a search path
  double c1 = 32.0;   // PUCT: Q + (c1 + ln((N + c2 + 1) / c2)) * prior * sqrt(N) / (1 + n)
  double c2 = 8.0;
  int64_t paths = 24;      // best paths (by visit count) kept for the draft trie
  bool extend = true;      // extend each kept path of length >= 2 by the table's argmax once
  int64_t max_nodes = 64;  // node budget of the union trie
  MctsReward reward = MctsReward::Table;
};

struct AdedParams {
  TrigramParams table;
  MctsParams mcts;
  bool adapt = true;  // adapt the table before each draft
  // An extension, off by default: at a sequence's first step also adapt over the whole
  // prompt (not only its last `window` tokens), as prompt-lookup decoding exploits it.
  bool adapt_prompt = false;
  // An extension, off (0) by default: also draft up to `lookup` tokens that followed an
  // earlier occurrence of the context's last 3 (else 2) tokens (context_lookup), as one more
  // path of the trie, its length adapting from step to step (+2 when all of it was
  // accepted, -1 when not) (prompt-lookup drafting; it pays where outputs copy their context,
  // as code does). Its nodes come on top of max_nodes.
  int64_t lookup = 0;
  // Off by default in the engine, on in the `mtad` command and mtad.generate: choose each
  // step's node budget, 0..mcts.max_nodes, for the most expected tokens per second from the
  // acceptance per trie rank seen so far and the measured cost of a pass (decode/
  // tree_budget.h); a budget of 0 without a lookup path is an AR step.
  bool auto_nodes = false;
};

// Throws InputError naming the first parameter out of range.
void check_aded_params(const AdedParams& p);

// Sparse map (a, b) -> {c: value}. Rows are kept sorted by value, best first (ties: the
// lower token id). Values start as per-context frequencies of the corpus and grow by
// adaptation; they are scores, renormalised only when sampled from.
// Not synchronised: code that shares a table between threads holds lock() around use.
class TrigramTable {
 public:
  struct Entry {
    int32_t token;
    float value;
  };
  // A row's entries; invalidated by any change to the table.
  struct Row {
    const Entry* data = nullptr;
    int64_t size = 0;
    const Entry* begin() const { return data; }
    const Entry* end() const { return data + size; }
    bool empty() const { return size == 0; }
    float value_of(int64_t token) const;  // 0 when absent
  };

  // vocab_size in [1, 2^21] (a tri-gram packs into 64 bits).
  explicit TrigramTable(int64_t vocab_size);
  TrigramTable(TrigramTable&&) noexcept;
  TrigramTable& operator=(TrigramTable&&) noexcept;
  ~TrigramTable();

  int64_t vocab_size() const { return vocab_; }
  int64_t num_contexts() const { return static_cast<int64_t>(rows_.size()); }
  int64_t num_entries() const;

  // Counts the tri-grams of one token sequence (a document: none spans two calls). The
  // counts become values at finalize().
  void add_sequence(const int64_t* ids, int64_t n);
  int64_t pending_trigrams() const { return static_cast<int64_t>(pending_.size()); }
  // Turns the pending counts into rows: count / context total, the best max_successors
  // kept (0: all), no renormalisation. A context already in the table gets the new values
  // added to its old ones, then is pruned the same way.
  void finalize(int64_t max_successors = kDefaultMaxSuccessors);
  // Keeps the best max_successors of every row (0: no-op).
  void prune(int64_t max_successors);

  // Adaptation (algorithms.md 4): over the last p.window of tokens[0, n), adds
  // p.increment to every tri-gram occurrence (creating it if absent), capped at p.cap.
  void adapt(const int64_t* tokens, int64_t n, const TrigramParams& p);
  // Adds delta to one tri-gram (created if absent), capped at cap.
  void add(int64_t a, int64_t b, int64_t c, double delta, double cap);

  Row row(int64_t a, int64_t b) const;

  // Versioned binary file: header (magic, version, vocabulary size, counts, payload size,
  // checksum of the payload), then the contexts and their rows. Written to a temporary
  // name and renamed, so a reader never sees a partial file.
  void save(const std::string& path) const;
  // Throws FileNotFound, FormatError (not a table file, wrong version, truncated, bad
  // checksum, inconsistent contents) or InputError (expected_vocab >= 0 and the file was
  // built for another vocabulary). Prunes to max_successors (0: keep all).
  static TrigramTable load(const std::string& path, int64_t expected_vocab = -1,
                           int64_t max_successors = kDefaultMaxSuccessors);

  std::unique_lock<std::mutex> lock() const { return std::unique_lock<std::mutex>(*mu_); }

 private:
  struct RowRef {
    uint64_t key;  // a * V + b
    uint32_t offset, size, capacity;
  };
  uint64_t key(int64_t a, int64_t b) const;
  int64_t find(uint64_t key) const;  // row index or -1
  int64_t find_or_insert(uint64_t key);
  void rehash(uint64_t slots);
  void insert_index(uint64_t key, uint32_t row);
  Entry* grow(RowRef& r, uint32_t need);
  void sort_row(RowRef& r);

  int64_t vocab_;
  std::vector<RowRef> rows_;
  std::vector<Entry> pool_;        // rows' entries; a row that outgrows its room moves to the end
  std::vector<uint32_t> index_;    // open addressing: row + 1, 0 = empty
  std::vector<uint64_t> pending_;  // packed (a * V + b) * V + c, one per occurrence
  std::unique_ptr<std::mutex> mu_;
};

// The extension's path: up to max_tokens tokens that follow an earlier occurrence in
// tokens[0, n - 1) of the last g tokens, g = max_ngram down to 2: the latest occurrence
// followed by max_tokens tokens, else the one followed by the most (empty: no match).
std::vector<int64_t> context_lookup(const int64_t* tokens, int64_t n, int64_t max_tokens, int64_t max_ngram = 3);

// Counters of one search (for tests and tuning).
struct MctsStats {
  int64_t tree_nodes = 0;     // search-tree nodes, root included
  int64_t root_visits = 0;
  int64_t rollout_tokens = 0;
};

// MCTS over the table from the root state (a, b) = the last two committed tokens
// (algorithms.md 4). Deterministic for (table, a, b, p, seed, offset): rollouts draw
// u = rng::uniform(seed, offset + k), k = 0, 1, ...
// The trie's siblings are distinct tokens, in the order the search ranked them.
DraftTree mcts_draft(const TrigramTable& table, int64_t a, int64_t b, const MctsParams& p, uint64_t seed,
                     uint64_t offset, MctsStats* stats = nullptr);

struct AdedDraft {
  DraftTree tree;
  std::vector<int64_t> lookup;  // the context-lookup path merged into the tree (empty: none)
  MctsStats stats;              // zero when there was no search
  int64_t trie_nodes = 0;       // the tree's first nodes that came from the search
};
// ADED's draft, as a decoding step makes it: the MCTS trie from the root state (a, b)
// (none when `state` is empty: a one-token sequence has no state) with rng offset
// `offset`, cut to its first `budget` nodes when budget >= 0 (the trie a smaller max_nodes
// makes), then, when lookup_len > 0, context_lookup(context, n, lookup_len) merged in.
// The caller holds table.lock().
AdedDraft aded_draft(const TrigramTable& table, const std::optional<std::array<int64_t, 2>>& state,
                     const int64_t* context, int64_t n, const AdedParams& p, int64_t lookup_len, uint64_t seed,
                     uint64_t offset, int64_t budget = -1);

}  // namespace mtad
