// MCTS over the tri-gram table (algorithms.md 4): PUCT selection with unvisited children
// first, expansion of all successors, rollouts sampled from the renormalised rows up to the
// depth limit, reward 1 + the table values along the path, back-propagation of visits and
// reward; then the draft trie from the most visited paths.
#include "decode/aded/mcts.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "mtad/errors.h"
#include "ops/rng.h"

namespace mtad::aded {

Search::Search(const TrigramTable& table, int64_t a, int64_t b, const MctsParams& p, uint64_t seed,
               uint64_t offset)
    : table_(table), p_(p), seed_(seed), counter_(offset) {
  AdedParams check;
  check.mcts = p;
  check_aded_params(check);
  SearchNode root;
  root.a = a;
  root.b = b;
  table_.row(a, b);  // validates the ids
  nodes_.push_back(root);
}

double Search::step_value(int64_t a, int64_t b, int64_t token, float table_value) const {
  if (p_.reward == MctsReward::Table) return table_value;
  // The public code's lookup: the token in the row of the state it leads to, (b, token).
  return table_.row(b, token).value_of(token);
}

void Search::expand(int64_t node) {
  // Copy what is needed first: push_back may move the nodes.
  const int64_t a = nodes_[node].a, b = nodes_[node].b, depth = nodes_[node].depth;
  const TrigramTable::Row row = table_.row(a, b);
  nodes_[node].expanded = true;
  nodes_[node].first_child = static_cast<int64_t>(nodes_.size());
  nodes_[node].num_children = row.size;
  for (const TrigramTable::Entry& e : row) {
    SearchNode c;
    c.token = e.token;
    c.parent = node;
    c.depth = depth + 1;
    c.a = b;
    c.b = e.token;
    c.prior = e.value;
    nodes_.push_back(c);
  }
}

int64_t Search::select_child(int64_t node) const {
  const SearchNode& n = nodes_[node];
  const int64_t begin = n.first_child, end = begin + n.num_children;
  // Unvisited children first, in row order (best table value first).
  for (int64_t c = begin; c < end; ++c)
    if (nodes_[c].visits == 0) return c;
  const double N = static_cast<double>(n.visits);
  const double explore = (p_.c1 + std::log((N + p_.c2 + 1.0) / p_.c2)) * std::sqrt(N);
  int64_t best = begin;
  double best_score = -INFINITY;
  for (int64_t c = begin; c < end; ++c) {
    const SearchNode& ch = nodes_[c];
    const double q = ch.reward / static_cast<double>(ch.visits);
    const double score = q + explore * ch.prior / (1.0 + static_cast<double>(ch.visits));
    if (score > best_score) {
      best_score = score;
      best = c;
    }
  }
  return best;
}

void Search::simulate() {
  // Selection (expanding on the way) down to a new child, a leaf or the depth limit.
  std::vector<int64_t> path{0};
  int64_t node = 0;
  while (nodes_[node].depth < p_.depth) {
    if (!nodes_[node].expanded) expand(node);
    if (nodes_[node].num_children == 0) break;
    const int64_t child = select_child(node);
    path.push_back(child);
    node = child;
    if (nodes_[child].visits == 0) break;
  }
  double reward = 1.0;
  for (size_t i = 1; i < path.size(); ++i) {
    const SearchNode& n = nodes_[path[i]];
    reward += step_value(nodes_[n.parent].a, nodes_[n.parent].b, n.token, n.prior);
  }
  // Rollout: sample from the renormalised rows up to the depth limit.
  int64_t a = nodes_[node].a, b = nodes_[node].b;
  for (int64_t d = nodes_[node].depth; d < p_.depth; ++d) {
    const TrigramTable::Row row = table_.row(a, b);
    double total = 0.0;
    for (const TrigramTable::Entry& e : row) total += e.value;
    if (!(total > 0.0)) break;
    const double target = rng::uniform(seed_, counter_++) * total;
    double cum = 0.0;
    const TrigramTable::Entry* pick = row.end() - 1;
    for (const TrigramTable::Entry& e : row) {
      cum += e.value;
      if (cum > target) {
        pick = &e;
        break;
      }
    }
    reward += step_value(a, b, pick->token, pick->value);
    ++rollout_tokens_;
    a = b;
    b = pick->token;
  }
  for (int64_t x : path) {
    nodes_[x].visits += 1;
    nodes_[x].reward += reward;
  }
}

void Search::run() {
  for (int64_t s = 0; s < p_.simulations; ++s) simulate();
}

std::vector<int64_t> Search::path_tokens(int64_t node) const {
  std::vector<int64_t> t;
  for (int64_t x = node; x > 0; x = nodes_[x].parent) t.push_back(nodes_[x].token);
  std::reverse(t.begin(), t.end());
  return t;
}

DraftTree Search::trie() const {
  DraftTree trie;
  // Every path root -> node, most visited first; a parent has at least its child's
  // visits, so on ties the shallower (the prefix) goes first.
  std::vector<int64_t> order(nodes_.size() > 0 ? nodes_.size() - 1 : 0);
  std::iota(order.begin(), order.end(), int64_t(1));
  std::stable_sort(order.begin(), order.end(), [&](int64_t x, int64_t y) {
    if (nodes_[x].visits != nodes_[y].visits) return nodes_[x].visits > nodes_[y].visits;
    return nodes_[x].depth < nodes_[y].depth;
  });
  if (int64_t(order.size()) > p_.paths) order.resize(size_t(p_.paths));

  std::vector<std::vector<int64_t>> children(1);  // trie node + 1 -> its children
  for (int64_t node : order) {
    std::vector<int64_t> toks = path_tokens(node);
    if (p_.extend && toks.size() >= 2) {
      const TrigramTable::Row row = table_.row(nodes_[node].a, nodes_[node].b);
      if (!row.empty()) toks.push_back(row.begin()->token);
    }
    int64_t at = -1;  // trie node (-1: the root)
    for (size_t d = 0; d < toks.size(); ++d) {
      int64_t next = -1;
      for (int64_t c : children[at + 1])
        if (trie.token[c] == toks[d]) next = c;
      if (next < 0) {
        if (trie.size() >= p_.max_nodes) return trie;  // the budget is spent
        next = trie.add(at, toks[d]);
        children[at + 1].push_back(next);
        children.emplace_back();
      }
      at = next;
    }
  }
  return trie;
}

}  // namespace mtad::aded

namespace mtad {

DraftTree mcts_draft(const TrigramTable& table, int64_t a, int64_t b, const MctsParams& p, uint64_t seed,
                     uint64_t offset, MctsStats* stats) {
  aded::Search search(table, a, b, p, seed, offset);
  search.run();
  if (stats) {
    stats->tree_nodes = static_cast<int64_t>(search.nodes().size());
    stats->root_visits = search.nodes().front().visits;
    stats->rollout_tokens = search.rollout_tokens();
  }
  return search.trie();
}

}  // namespace mtad
