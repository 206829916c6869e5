#include "decode/draft_model.h"

#include <ATen/ATen.h>

#include <algorithm>

namespace mtad {

void DraftModel::start(const std::vector<int64_t>& prompt) {
  cache_.truncate(0);
  if (prompt.size() > 1) {
    const at::Tensor ids = at::tensor(std::vector<int64_t>(prompt.begin(), prompt.end() - 1), at::kLong);
    model_.forward(cache_, ids, at::Tensor(), at::Tensor(), at::empty({0}, at::kLong));
  }
}

at::Tensor DraftModel::catch_up(const std::vector<int64_t>& tokens) {
  base_ = static_cast<int64_t>(tokens.size());
  const int64_t fed = cache_.length;
  const at::Tensor ids = at::tensor(std::vector<int64_t>(tokens.begin() + fed, tokens.end()), at::kLong);
  return model_.forward(cache_, ids, at::Tensor(), at::Tensor(), at::tensor({base_ - fed - 1}, at::kLong));
}

at::Tensor DraftModel::forward(const DraftTree::Inputs& in) {
  return model_.forward(cache_, in.ids, in.positions, in.mask, at::Tensor());
}

at::Tensor DraftModel::forward_sampled(const at::Tensor& ids, const at::Tensor& positions, const at::Tensor& mask) {
  return model_.forward_sampled(cache_, ids, positions, mask, at::Tensor());
}

void DraftModel::accept(const DraftTree& tree, const std::vector<int64_t>& path) {
  // Nodes come parents first and the draft fed a prefix of them: the fed part of the path
  // is a prefix of it.
  const int64_t fed = cache_.length - base_;
  size_t keep = 0;
  while (keep < path.size() && path[keep] < fed) ++keep;
  tree.commit(cache_, base_, std::vector<int64_t>(path.begin(), path.begin() + keep));
}

}  // namespace mtad
