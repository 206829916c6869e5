// The Decoder: committed tokens, the target cache, argument checks, and the one step every
// method runs: propose, verify, accept, commit (the method table, decode/methods.cpp, says
// with what). Invariant between steps: the target cache holds every committed token but
// the last, which the next step feeds; a drafter's cache holds a prefix of them.
#include "mtad/decoder.h"

#include <ATen/ATen.h>

#include <cmath>

#include "decode/draft_length.h"
#include "decode/methods.h"
#include "decode/step_clock.h"
#include "mtad/errors.h"
#include "ops/to_host.h"

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
  host_reads += o.host_reads;
  return *this;
}

namespace {

void check_sampling(const SamplingParams& p, const std::string& who) {
  // The kernels take float: a temperature that overflows float would fail inside a step.
  if (!(p.temperature >= 0) || !std::isfinite(static_cast<float>(p.temperature)))
    throw InputError(who + " temperature must be >= 0 and finite as a float32");
  if (p.top_k < 0) throw InputError(who + " top_k must be >= 0");
  if (!(p.top_p >= 0 && p.top_p <= 1)) throw InputError(who + " top_p must be in [0, 1]");
}

void check_draft(const Model& target, const Model* draft, const DecodeConfig& c) {
  if (draft == nullptr) throw InputError("method " + method_name(c.method) + " needs a draft model");
  if (draft->config().vocab_size != target.config().vocab_size)
    throw InputError("draft vocabulary (" + std::to_string(draft->config().vocab_size) +
                     ") differs from the target's (" + std::to_string(target.config().vocab_size) + ")");
  if (draft->device() != target.device()) throw InputError("draft and target are on different devices");
}

}  // namespace

Decoder::Decoder(Model& target, Model* draft, DecodeConfig config, int64_t capacity)
    : target_(target), spec_(&method_spec(config.method)), config_(config) {
  const auto& c = config_;
  check_sampling(c.target, "target");
  check_sampling(c.draft, "draft");
  if (spec_->info.needs_draft) check_draft(target_, draft, c);
  spec_->check(c);
  if (!(c.tau > 0 && c.tau <= 1)) throw InputError("tau must be in (0, 1]");
  if (capacity < 1) throw InputError("capacity must be positive");
  // The headroom (width * gamma + 1) and the cache size must not overflow int64 (undefined).
  constexpr int64_t kMaxDraft = int64_t(1) << 31;
  if (c.method != Method::AR && c.method != Method::ADED &&
      (c.gamma > kMaxDraft || c.width > kMaxDraft || c.max_gamma > kMaxDraft))
    throw InputError("gamma, max_gamma and width must be at most 2^31");
  // gamma auto: the caches are sized for max_gamma; each step drafts up to that.
  auto_gamma_ = spec_->info.needs_draft && c.gamma == DecodeConfig::kAutoGamma;
  if (auto_gamma_) config_.gamma = config_.max_gamma;
  if (int64_t total = 0; __builtin_add_overflow(capacity, step_headroom(), &total))
    throw InputError("capacity " + std::to_string(capacity) + " is too large");
  tcache_ = target_.new_cache(capacity + step_headroom());
  if (spec_->proposer)
    proposer_ = spec_->proposer(ProposerArgs{target_, draft, config_, tcache_.capacity(), trigram_});
  if (auto_gamma_) draft_length_ = make_draft_length(target_, *draft, config_);
}

Decoder::~Decoder() = default;

const KVCache* Decoder::draft_cache() const { return proposer_ ? proposer_->cache() : nullptr; }

int64_t Decoder::step_headroom() const {
  if (!auto_gamma_) return spec_->headroom(config_);
  DecodeConfig most = config_;  // the longest draft auto may choose
  most.gamma = most.max_gamma;
  return spec_->headroom(most);
}

void Decoder::set_trigram_table(std::shared_ptr<TrigramTable> table) {
  if (config_.method != Method::ADED)
    throw InputError("set_trigram_table: the decoder runs " + method_name(config_.method) + ", not aded");
  if (!table) throw InputError("set_trigram_table: the table is null");
  if (table->vocab_size() != target_.config().vocab_size)
    throw InputError("set_trigram_table: the table's vocabulary (" + std::to_string(table->vocab_size()) +
                     ") differs from the target's (" + std::to_string(target_.config().vocab_size) + ")");
  trigram_ = std::move(table);
}

void Decoder::set_aded_params(const AdedParams& params) {
  check_aded_params(params);
  config_.aded = params;
}

void Decoder::start(const std::vector<int64_t>& prompt) {
  if (prompt.empty()) throw InputError("the prompt holds no tokens");
  const int64_t capacity = tcache_.capacity() - step_headroom();
  if (static_cast<int64_t>(prompt.size()) > capacity)
    throw InputError("the prompt has " + std::to_string(prompt.size()) + " tokens, more than the cache holds (" +
                     std::to_string(capacity) + ")");
  tokens_ = prompt;
  tcache_.truncate(0);
  last_ = total_ = StepStats{};
  calls_ = 0;
  // Everything but the last token; the first step feeds that one.
  if (prompt.size() > 1) {
    at::Tensor ids = at::tensor(std::vector<int64_t>(prompt.begin(), prompt.end() - 1), at::kLong);
    target_.forward(tcache_, ids, at::Tensor(), at::Tensor(), at::empty({0}, at::kLong));
  }
  if (proposer_) proposer_->start(prompt);
  if (draft_length_) draft_length_->reset();
}

std::vector<int64_t> Decoder::step() {
  if (tokens_.empty()) throw InputError("call start(prompt) before step()");
  const int64_t n = static_cast<int64_t>(tokens_.size());
  const int64_t capacity = tcache_.capacity() - step_headroom();
  if (n >= capacity)
    throw InputError("the sequence has reached the cache capacity (" + std::to_string(capacity) + " tokens)");
  StepClock clock(target_.device());
  const int64_t reads0 = ops::host_reads();
  StepStats s;
  Rng rng{config_.seed, calls_};
  // Propose: a draft tree below the last committed token (none without a drafter).
  if (auto_gamma_) config_.gamma = draft_length_->next();
  // gamma auto may choose an AR step: no draft, AR's rule.
  const bool drafting = proposer_ && !(auto_gamma_ && config_.gamma == 0);
  Proposal p;
  if (drafting) {
    p = proposer_->propose(tokens_, tcache_.capacity() - n, rng, s);
    clock.drafted();
  }
  // Verify: one target pass over the last committed token (row 0, at slot n - 1) and the
  // tree behind it (node i at slot n + i); the method's rule accepts a path.
  Verdict v;
  {
    const DraftTree::Inputs in = p.tree.inputs(tokens_.back(), n - 1);
    // A chain sampled on the device (SpS) is fed from there, behind the root.
    const at::Tensor logits =
        p.tokens.defined()
            ? target_.forward_sampled(tcache_, at::cat({in.ids.narrow(0, 0, 1).to(p.tokens.device()), p.tokens}),
                                      in.positions, in.mask, at::Tensor())
            : target_.forward(tcache_, in.ids, in.positions, in.mask, at::Tensor());
    s.target_forwards = 1;
    v = drafting || !proposer_ ? spec_->accept(logits, p, config_, rng) : accept_sample(logits, p, config_, rng);
    clock.verified();  // the rule's read was the step's last
  }
  // Commit: the caches keep the accepted path and drop the rest.
  p.tree.commit(tcache_, n, v.path);
  if (drafting) proposer_->accepted(p, v.path);
  clock.committed();
  calls_ = rng.calls;
  std::vector<int64_t> out = p.tokens.defined() ? v.tokens : p.tree.tokens_of(v.path);
  out.push_back(v.next_token);
  s.drafted = p.tree.size();
  s.accepted = static_cast<int64_t>(v.path.size());
  if (auto_gamma_) draft_length_->observe(config_.gamma, s.accepted);
  clock.finish(s);
  s.emitted = static_cast<int64_t>(out.size());
  s.host_reads = ops::host_reads() - reads0;
  tokens_.insert(tokens_.end(), out.begin(), out.end());
  last_ = s;
  total_ += s;
  return out;
}

}  // namespace mtad
