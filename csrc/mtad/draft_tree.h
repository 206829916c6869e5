// The draft every speculative method puts before the target (algorithms.md 2-4): a token
// tree below the root, the last committed token. A chain (SpS, single-beam MTAD) is a tree
// whose every node is its predecessor's child. Nodes are stored parents first, so any
// prefix of them is a tree too.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "mtad/kv_cache.h"

namespace mtad {

struct DraftTree {
  std::vector<int64_t> parent;  // -1 for a child of the root
  std::vector<int64_t> token;
  std::vector<int64_t> depth;  // 1 for a child of the root
  std::vector<float> logprob;  // log q(token | path to parent) under the drafter (0 where it has none)

  // The chain root -> tokens[0] -> tokens[1] -> ...
  static DraftTree chain(const std::vector<int64_t>& tokens, const std::vector<float>& logprobs = {});

  int64_t size() const { return static_cast<int64_t>(token.size()); }
  bool empty() const { return token.empty(); }
  bool is_chain() const;
  // Appends a child of `parent` (-1: the root); returns its index.
  int64_t add(int64_t parent, int64_t token, float logprob = 0.f);
  // Adds the root path `tokens`, sharing the nodes of its longest prefix already here.
  void add_path(const std::vector<int64_t>& tokens);
  // Keeps the first n nodes (still a tree: parents come first).
  void truncate(int64_t n);
  // The nodes from the root's child down to `node`.
  std::vector<int64_t> path_to(int64_t node) const;
  std::vector<int64_t> tokens_of(const std::vector<int64_t>& nodes) const;

  // A forward's input rows: ids [T], positions [T] and mask [T, M] (undefined: the default
  // causal order from the cache length).
  struct Inputs {
    at::Tensor ids, positions, mask;
  };
  // The target's verification pass: row 0 is the root (fed at position root_pos, it is not
  // yet in the cache), row 1 + i is node i at root_pos + depth, seeing the cache, the root,
  // its ancestors and itself. A chain needs neither positions nor mask: causal order is its
  // tree mask.
  Inputs inputs(int64_t root_token, int64_t root_pos) const;
  // `nodes` as rows appended after the nodes already fed (MTAD's draft feeds each depth's
  // beams so): mask [M, size()] over every node so far, the root being in the cache.
  Inputs rows(const std::vector<int64_t>& nodes, int64_t root_pos) const;

  // After a pass that wrote node i at cache slot prefix + i, keeps the accepted `path`
  // (a root path of this tree) right after the prefix: one kv_compact, none when the path
  // is already in place (a chain's accepted prefix), then the length prefix + path size.
  void commit(KVCache& cache, int64_t prefix, const std::vector<int64_t>& path) const;
};

}  // namespace mtad
