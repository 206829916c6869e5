#include "decode/draft_length.h"

#include <algorithm>
#include <utility>

#include "mtad/errors.h"

namespace mtad {
namespace {

// Weight of the past per observed step: the acceptance follows the last ~10 steps.
constexpr double kDecay = 0.9;
constexpr int64_t kProbeEvery = 8;
constexpr int64_t kMaxProbeEvery = 64;

}  // namespace

DraftLength::DraftLength(std::vector<double> verify_seconds, double draft_seconds)
    : verify_(std::move(verify_seconds)), draft_(draft_seconds) {
  if (verify_.size() < 2) throw InputError("the automatic draft length needs a cost for gamma 0 and 1");
}

void DraftLength::reset() {
  hits_ = 1.0;
  tries_ = 2.0;
  ar_steps_ = 0;
  probe_every_ = kProbeEvery;
  probing_ = false;
}

double DraftLength::acceptance() const { return hits_ / tries_; }

double DraftLength::rate(int64_t g) const {
  const double a = acceptance();
  double expected = 1.0, term = 1.0;
  for (int64_t i = 0; i < g; ++i) expected += (term *= a);
  return expected / (static_cast<double>(g) * draft_ + verify_[g]);
}

int64_t DraftLength::best() const {
  int64_t best = 0;
  for (int64_t g = 1; g <= max_gamma(); ++g)
    if (rate(g) > rate(best)) best = g;
  return best;
}

int64_t DraftLength::next() {
  if (const int64_t g = best(); g > 0) {
    ar_steps_ = 0;
    return g;
  }
  // No draft pays at the acceptance seen: AR, but probe now and then (the text may turn
  // predictable again), less often while probes keep failing.
  if (++ar_steps_ < probe_every_) return 0;
  ar_steps_ = 0;
  probing_ = true;
  return 1;
}

void DraftLength::observe(int64_t gamma, int64_t accepted) {
  if (gamma <= 0) return;
  const int64_t judged = std::min(accepted + 1, gamma);
  hits_ = kDecay * hits_ + static_cast<double>(accepted);
  tries_ = kDecay * tries_ + static_cast<double>(judged);
  if (probing_) {
    // The answer to a probe: drafting pays again, or the next probe waits twice as long.
    probing_ = false;
    probe_every_ = best() > 0 ? kProbeEvery : std::min(probe_every_ * 2, kMaxProbeEvery);
  }
}

std::unique_ptr<DraftLength> make_draft_length(Model& target, Model& draft, const DecodeConfig& c) {
  const int64_t per_depth = c.method == Method::MTADTree ? c.width : 1;
  const int64_t beams = c.method == Method::SpS ? 1 : c.width;
  // Measured at gamma 0, 1, 2, 4, 8, ... and max_gamma; linear in between (a forward's cost
  // grows smoothly with its token count), which keeps the measuring to a few forwards.
  std::vector<double> verify(c.max_gamma + 1, 0.0);
  int64_t last = 0;
  verify[0] = target.forward_seconds(1);
  for (int64_t g = 1; last < c.max_gamma; g = std::min(g * 2, c.max_gamma)) {
    verify[g] = target.forward_seconds(per_depth * g + 1);
    for (int64_t i = last + 1; i < g; ++i)
      verify[i] = verify[last] + (verify[g] - verify[last]) * double(i - last) / double(g - last);
    last = g;
  }
  return std::make_unique<DraftLength>(std::move(verify), draft.forward_seconds(beams));
}

}  // namespace mtad
