// A draft model and its cache, shared by the drafters that run one (SpS, MTAD). Between
// steps the cache holds a prefix of the committed tokens: catch_up() feeds the rest, the
// drafter feeds its tree's rows after them, accept() keeps the accepted ones it fed.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "mtad/draft_tree.h"
#include "mtad/model.h"

namespace mtad {

class DraftModel {
 public:
  DraftModel(Model& model, int64_t capacity) : model_(model), cache_(model.new_cache(capacity)) {}

  // A new sequence: feeds all of the prompt but its last token.
  void start(const std::vector<int64_t>& prompt);
  // Feeds every committed token not yet in the cache; returns the last one's logits row.
  at::Tensor catch_up(const std::vector<int64_t>& tokens);
  // Feeds rows of the draft tree (node i goes to slot base + i, base = the committed count).
  at::Tensor forward(const DraftTree::Inputs& in);
  // Feeds tokens the draft sampled on its device, after the cache (Model::forward_sampled);
  // a tree's rows give their positions and their device mask over the tree's nodes.
  at::Tensor forward_sampled(const at::Tensor& ids, const at::Tensor& positions = {},
                             const at::Tensor& mask = {});
  // The target accepted `path` of `tree`: keeps the accepted nodes the draft fed itself.
  void accept(const DraftTree& tree, const std::vector<int64_t>& path);

  const KVCache& cache() const { return cache_; }

 private:
  Model& model_;
  KVCache cache_;
  int64_t base_ = 0;  // committed tokens at the last catch_up
};

}  // namespace mtad
