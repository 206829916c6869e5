// The Decoder's shared state: committed tokens, both caches, argument checks. Invariant
// between steps: the target cache holds every committed token but the last, which the
// next step feeds; the draft cache holds a prefix of them (the rest is fed on demand).
#include "mtad/decoder.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cmath>

#include "mtad/errors.h"

namespace mtad {

StepStats& StepStats::operator+=(const StepStats& o) {
  emitted += o.emitted;
  drafted += o.drafted;
  accepted += o.accepted;
  target_forwards += o.target_forwards;
  draft_forwards += o.draft_forwards;
  draft_s += o.draft_s;
  verify_s += o.verify_s;
  rollback_s += o.rollback_s;
  other_s += o.other_s;
  return *this;
}

Method parse_method(const std::string& name) {
  if (name == "ar") return Method::AR;
  if (name == "sps") return Method::SpS;
  if (name == "mtad") return Method::MTAD;
  if (name == "mtad-tree") return Method::MTADTree;
  if (name == "aded") return Method::ADED;
  throw InputError("method '" + name + "' is not one of ar, sps, mtad, mtad-tree, aded");
}

std::string method_name(Method m) {
  switch (m) {
    case Method::AR: return "ar";
    case Method::SpS: return "sps";
    case Method::MTAD: return "mtad";
    case Method::MTADTree: return "mtad-tree";
    case Method::ADED: return "aded";
  }
  return "?";
}

namespace {

void check_sampling(const SamplingParams& p, const std::string& who) {
  // The kernels take float: a temperature that overflows float would fail inside a step.
  if (!(p.temperature >= 0) || !std::isfinite(static_cast<float>(p.temperature)))
    throw InputError(who + " temperature must be >= 0 and finite as a float32");
  if (p.top_k < 0) throw InputError(who + " top_k must be >= 0");
  if (!(p.top_p >= 0 && p.top_p <= 1)) throw InputError(who + " top_p must be in [0, 1]");
}

}  // namespace

Decoder::Decoder(Model& target, Model* draft, DecodeConfig config, int64_t capacity)
    : target_(target), draft_(config.method == Method::ADED ? nullptr : draft), config_(config) {
  const auto& c = config_;
  check_sampling(c.target, "target");
  check_sampling(c.draft, "draft");
  if (c.method == Method::ADED) {
    check_aded_params(c.aded);
    trigram_ = std::make_shared<TrigramTable>(target_.config().vocab_size);
  } else if (c.method != Method::AR) {
    if (draft_ == nullptr) throw InputError("method " + method_name(c.method) + " needs a draft model");
    if (draft_->config().vocab_size != target_.config().vocab_size)
      throw InputError("draft vocabulary (" + std::to_string(draft_->config().vocab_size) +
                       ") differs from the target's (" + std::to_string(target_.config().vocab_size) + ")");
    if (draft_->device() != target_.device()) throw InputError("draft and target are on different devices");
    if (c.gamma < 1) throw InputError("gamma must be >= 1");
  }
  if ((c.method == Method::MTAD || c.method == Method::MTADTree) && c.width < 1)
    throw InputError("width must be >= 1");
  if (!(c.tau > 0 && c.tau <= 1)) throw InputError("tau must be in (0, 1]");
  if (capacity < 1) throw InputError("capacity must be positive");
  // The headroom (width * gamma + 1) and the cache size must not overflow int64 (undefined).
  constexpr int64_t kMaxDraft = int64_t(1) << 31;
  if (c.method != Method::AR && c.method != Method::ADED && (c.gamma > kMaxDraft || c.width > kMaxDraft))
    throw InputError("gamma and width must be at most 2^31");
  if (int64_t total = 0; __builtin_add_overflow(capacity, step_headroom(), &total))
    throw InputError("capacity " + std::to_string(capacity) + " is too large");
  tcache_ = target_.new_cache(capacity + step_headroom());
  if (draft_ && c.method != Method::AR) dcache_ = draft_->new_cache(capacity + step_headroom());
}

int64_t Decoder::step_headroom() const {
  switch (config_.method) {
    case Method::AR: return 1;
    case Method::SpS: return config_.gamma + 1;
    case Method::MTAD: return config_.width * config_.gamma + 1;
    case Method::MTADTree: return config_.width * config_.gamma + 1;
    case Method::ADED: return config_.aded.mcts.max_nodes + 1;
  }
  return 1;
}

void Decoder::start(const std::vector<int64_t>& prompt) {
  if (prompt.empty()) throw InputError("the prompt holds no tokens");
  const int64_t capacity = tcache_.capacity() - step_headroom();
  if (static_cast<int64_t>(prompt.size()) > capacity)
    throw InputError("the prompt has " + std::to_string(prompt.size()) + " tokens, more than the cache holds (" +
                     std::to_string(capacity) + ")");
  tokens_ = prompt;
  tcache_.truncate(0);
  if (dcache_.k.defined()) dcache_.truncate(0);
  last_ = total_ = StepStats{};
  calls_ = 0;
  lookup_len_ = 0;  // ADED: a new sequence starts from the configured lookup length
  // Everything but the last token; the first step feeds that one.
  if (prompt.size() > 1) {
    at::Tensor ids = at::tensor(std::vector<int64_t>(prompt.begin(), prompt.end() - 1), at::kLong);
    at::Tensor none = at::empty({0}, at::kLong);
    target_.forward(tcache_, ids, at::Tensor(), at::Tensor(), none);
    if (dcache_.k.defined()) draft_->forward(dcache_, ids, at::Tensor(), at::Tensor(), none);
  }
}

at::Tensor Decoder::draft_catch_up() {
  const int64_t n = static_cast<int64_t>(tokens_.size());
  std::vector<int64_t> pending(tokens_.begin() + dcache_.length, tokens_.end());
  at::Tensor ids = at::tensor(pending, at::kLong);
  return draft_->forward(dcache_, ids, at::Tensor(), at::Tensor(), at::tensor({n - dcache_.length - 1}, at::kLong));
}

std::vector<int64_t> Decoder::step() {
  if (tokens_.empty()) throw InputError("call start(prompt) before step()");
  const int64_t capacity = tcache_.capacity() - step_headroom();
  if (static_cast<int64_t>(tokens_.size()) >= capacity)
    throw InputError("the sequence has reached the cache capacity (" + std::to_string(capacity) + " tokens)");
  const auto t0 = std::chrono::steady_clock::now();
  StepStats s;
  std::vector<int64_t> out;
  switch (config_.method) {
    case Method::AR: out = step_ar(s); break;
    case Method::SpS: out = step_sps(s); break;
    case Method::MTAD: out = step_mtad(s, false); break;
    case Method::MTADTree: out = step_mtad(s, true); break;
    case Method::ADED: out = step_aded(s); break;
  }
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  s.other_s = std::max(0.0, total - s.draft_s - s.verify_s - s.rollback_s);
  s.emitted = static_cast<int64_t>(out.size());
  tokens_.insert(tokens_.end(), out.begin(), out.end());
  last_ = s;
  total_ += s;
  return out;
}

}  // namespace mtad
