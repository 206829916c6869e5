#include "decode/draft_length.h"

#include <algorithm>
#include <utility>

#include "mtad/errors.h"

namespace mtad {
namespace {

// Weight of the past per observed step: the acceptance follows the last ~10 steps.
constexpr double kDecay = 0.9;

}  // namespace

DraftLength::DraftLength(std::vector<double> verify_seconds, double draft_seconds)
    : verify_(std::move(verify_seconds)), draft_(draft_seconds) {
  if (verify_.size() < 2) throw InputError("the automatic draft length needs a cost for gamma 0 and 1");
}

void DraftLength::reset() {
  hits_ = 1.0;
  tries_ = 2.0;
  probes_.reset();
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
    probes_.skip();
    return g;
  }
  // No draft pays at the acceptance seen: AR, but probe at gamma 1 now and then (the text
  // may turn predictable again).
  return probes_.due() ? 1 : 0;
}

void DraftLength::observe(int64_t gamma, int64_t accepted) {
  if (gamma <= 0) return;
  const int64_t judged = std::min(accepted + 1, gamma);
  hits_ = kDecay * hits_ + static_cast<double>(accepted);
  tries_ = kDecay * tries_ + static_cast<double>(judged);
  if (probes_.probing()) probes_.answered(best() > 0);
}

std::vector<double> verify_costs(Model& target, int64_t steps, int64_t rows_per_step) {
  // Measured at 0, 1, 2, 4, 8, ... and `steps`; linear in between (a forward's cost grows
  // smoothly with its token count), which keeps the measuring to a few forwards.
  std::vector<double> verify(steps + 1, 0.0);
  verify[0] = target.forward_seconds(1);
  int64_t last = 0;
  for (int64_t g = 1; last < steps; g = std::min(g * 2, steps)) {
    verify[g] = target.forward_seconds(rows_per_step * g + 1);
    for (int64_t i = last + 1; i < g; ++i)
      verify[i] = verify[last] + (verify[g] - verify[last]) * double(i - last) / double(g - last);
    last = g;
  }
  return verify;
}

std::unique_ptr<DraftLength> make_draft_length(Model& target, Model& draft, const DecodeConfig& c) {
  const int64_t per_depth = c.method == Method::MTADTree ? c.width : 1;
  const int64_t beams = c.method == Method::SpS ? 1 : c.width;
  return std::make_unique<DraftLength>(verify_costs(target, c.max_gamma, per_depth), draft.forward_seconds(beams));
}

}  // namespace mtad
