// The draft tree's bookkeeping (mtad/draft_tree.h): the one place that writes tree masks
// and positions and compacts a cache to an accepted path (algorithms.md 3.3, 3.4, 4).
#include "mtad/draft_tree.h"

#include <ATen/ATen.h>

#include "ops/kv_compact.h"

namespace mtad {

DraftTree DraftTree::chain(const std::vector<int64_t>& tokens, const std::vector<float>& logprobs) {
  TORCH_CHECK(logprobs.empty() || logprobs.size() == tokens.size(), "DraftTree::chain: one logprob per token");
  DraftTree t;
  for (size_t i = 0; i < tokens.size(); ++i)
    t.add(static_cast<int64_t>(i) - 1, tokens[i], logprobs.empty() ? 0.f : logprobs[i]);
  return t;
}

bool DraftTree::is_chain() const {
  for (int64_t i = 0; i < size(); ++i)
    if (parent[i] != i - 1) return false;
  return true;
}

int64_t DraftTree::add(int64_t parent_node, int64_t tok, float lq) {
  TORCH_CHECK(parent_node >= -1 && parent_node < size(), "DraftTree::add: parent ", parent_node, " is not a node");
  parent.push_back(parent_node);
  token.push_back(tok);
  depth.push_back(parent_node < 0 ? 1 : depth[parent_node] + 1);
  logprob.push_back(lq);
  return size() - 1;
}

void DraftTree::add_path(const std::vector<int64_t>& tokens) {
  int64_t at = -1;  // -1: the root
  for (int64_t tok : tokens) {
    int64_t next = -1;
    for (int64_t i = at + 1; i < size() && next < 0; ++i)  // children come after their parent
      if (parent[i] == at && token[i] == tok) next = i;
    at = next >= 0 ? next : add(at, tok);
  }
}

void DraftTree::truncate(int64_t n) {
  if (n >= size()) return;
  parent.resize(n);
  token.resize(n);
  depth.resize(n);
  logprob.resize(n);
}

std::vector<int64_t> DraftTree::path_to(int64_t node) const {
  std::vector<int64_t> p;
  for (int64_t x = node; x >= 0; x = parent[x]) p.insert(p.begin(), x);
  return p;
}

std::vector<int64_t> DraftTree::tokens_of(const std::vector<int64_t>& nodes) const {
  std::vector<int64_t> out;
  out.reserve(nodes.size());
  for (int64_t x : nodes) out.push_back(token[x]);
  return out;
}

namespace {

// Marks node's ancestors and itself in `row`, node x at column x + shift.
void mark(const DraftTree& t, bool* row, int64_t node, int64_t shift) {
  for (int64_t x = node; x >= 0; x = t.parent[x]) row[x + shift] = true;
}

}  // namespace

DraftTree::Inputs DraftTree::inputs(int64_t root_token, int64_t root_pos) const {
  std::vector<int64_t> ids{root_token};
  ids.insert(ids.end(), token.begin(), token.end());
  Inputs in;
  in.ids = at::tensor(ids, at::kLong);
  if (is_chain()) return in;
  const int64_t N = size(), W = N + 1;
  in.mask = at::zeros({W, W}, at::kBool);
  bool* m = in.mask.data_ptr<bool>();
  std::vector<int64_t> pos{root_pos};
  m[0] = true;
  for (int64_t i = 0; i < N; ++i) {
    m[(i + 1) * W] = true;  // the root
    mark(*this, m + (i + 1) * W, i, 1);
    pos.push_back(root_pos + depth[i]);
  }
  in.positions = at::tensor(pos, at::kLong);
  return in;
}

DraftTree::Inputs DraftTree::rows(const std::vector<int64_t>& nodes, int64_t root_pos) const {
  const int64_t M = static_cast<int64_t>(nodes.size()), N = size();
  Inputs in;
  in.mask = at::zeros({M, N}, at::kBool);
  std::vector<int64_t> ids, pos;
  for (int64_t r = 0; r < M; ++r) {
    mark(*this, in.mask.data_ptr<bool>() + r * N, nodes[r], 0);
    ids.push_back(token[nodes[r]]);
    pos.push_back(root_pos + depth[nodes[r]]);
  }
  in.ids = at::tensor(ids, at::kLong);
  in.positions = at::tensor(pos, at::kLong);
  return in;
}

void DraftTree::commit(KVCache& cache, int64_t prefix, const std::vector<int64_t>& path) const {
  bool in_place = true;
  std::vector<int64_t> slots;
  for (size_t i = 0; i < path.size(); ++i) {
    TORCH_CHECK(path[i] >= 0 && path[i] < size() && parent[path[i]] == (i ? path[i - 1] : -1),
                "DraftTree::commit: the path is not a root path of the tree");
    slots.push_back(prefix + path[i]);
    in_place = in_place && path[i] == static_cast<int64_t>(i);
  }
  const int64_t length = prefix + static_cast<int64_t>(path.size());
  TORCH_CHECK(prefix >= 0 && (path.empty() || slots.back() < cache.length) && length <= cache.length,
              "DraftTree::commit: the path's slots are not in the cache");
  // Host slots: kv_compact checks them where they are and uploads them (no device round trip).
  if (!in_place) ops::kv_compact(cache.k, cache.v, prefix, at::tensor(slots, at::kLong));
  cache.length = length;
}

}  // namespace mtad
