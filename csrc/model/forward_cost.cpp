// Model::forward_seconds: the measured cost of a T-token forward, the table the automatic
// draft length (decode/draft_length.h) weighs drafts with.
#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>

#include "mtad/errors.h"
#include "mtad/model.h"

namespace mtad {
namespace {

constexpr int64_t kPrefix = 64;  // cached tokens before the timed ones, as in a short chat
constexpr int kRuns = 3;         // timed runs after one warm-up; the best counts

at::Tensor some_tokens(int64_t n, int64_t vocab, int64_t first) {
  return at::remainder(at::arange(first, first + n, at::kLong), vocab);
}

}  // namespace

double Model::forward_seconds(int64_t T) {
  if (T < 1) throw InputError("forward_seconds: T must be >= 1");
  std::lock_guard<std::mutex> lock(forward_seconds_mutex_);
  if (auto it = forward_seconds_.find(T); it != forward_seconds_.end()) return it->second;
  const int64_t vocab = config_.vocab_size;
  // Within the positions the model knows (OPT's are learned): a pass longer than that is
  // timed over as many rows as fit, without a prefix when there is no room for one.
  const int64_t max_pos = config_.max_position_embeddings;
  const int64_t rows = std::min(T, max_pos);
  const int64_t prefix = std::min(kPrefix, max_pos - rows);
  KVCache cache = new_cache(prefix + rows);
  const at::Device dev = device();
  if (prefix > 0)
    forward(cache, some_tokens(prefix, vocab, 1).to(dev), at::Tensor(), at::Tensor(), at::empty({0}, at::kLong));
  const at::Tensor ids = some_tokens(rows, vocab, prefix + 1).to(dev);
  double best = std::numeric_limits<double>::infinity();
  for (int run = 0; run <= kRuns; ++run) {
    cache.truncate(prefix);
    const auto t0 = std::chrono::steady_clock::now();
    // Copying the logits to the host waits for a GPU's work to finish.
    forward(cache, ids, at::Tensor(), at::Tensor(), at::Tensor()).to(at::kCPU);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (run > 0) best = std::min(best, s);
  }
  forward_seconds_[T] = best;
  return best;
}

std::map<int64_t, double> Model::forward_seconds_table() {
  std::lock_guard<std::mutex> lock(forward_seconds_mutex_);
  return forward_seconds_;
}

void Model::set_forward_seconds(int64_t T, double seconds) {
  if (T < 1) throw InputError("set_forward_seconds: T must be >= 1");
  if (!(seconds > 0.0) || !std::isfinite(seconds))
    throw InputError("set_forward_seconds: seconds must be a positive finite number");
  std::lock_guard<std::mutex> lock(forward_seconds_mutex_);
  forward_seconds_[T] = seconds;
}

}  // namespace mtad
