// The self-tuning draft length (gamma "auto") of the methods that draft a chain or beam tree
// with a draft model (SpS, MTAD, multi-candidate MTAD). Each step it picks the gamma that
// maximises expected emitted tokens per second,
//     rate(g) = E(g) / (g * draft_cost + verify_cost(g)),   E(g) = 1 + a + ... + a^g,
// from a cost table measured once per model (Model::forward_seconds) and the per-token
// acceptance a seen so far (counts that decay, so it follows the text). gamma 0 is a plain
// AR step: chosen when no draft pays, with a probe at gamma 1 now and then to learn whether
// the acceptance came back. Decisions depend on the table and on what was accepted, never
// on the clock during decoding: one decoder (or model) with one seed repeats its tokens.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "decode/probe_schedule.h"
#include "mtad/decoder.h"
#include "mtad/model.h"

namespace mtad {

class DraftLength {
 public:
  // verify_seconds[g]: a target pass over the tree of gamma g (g = 0..max_gamma; g = 0 is
  // the AR step's single token); draft_seconds: one draft forward (one depth).
  DraftLength(std::vector<double> verify_seconds, double draft_seconds);

  // A new sequence: back to the starting acceptance (what one sequence taught is not
  // carried into the next, so that a seed repeats its tokens whatever came before).
  void reset();
  // The gamma of the next step (0: no draft).
  int64_t next();
  // What a step drafted at `gamma` got accepted (leading draft tokens kept).
  void observe(int64_t gamma, int64_t accepted);

  double acceptance() const;
  // Expected tokens per second at gamma g under the current acceptance.
  double rate(int64_t g) const;
  int64_t max_gamma() const { return static_cast<int64_t>(verify_.size()) - 1; }

 private:
  int64_t best() const;  // the gamma of the highest rate (0 when none beats AR)

  std::vector<double> verify_;
  double draft_;
  // Decayed counts of accepted draft tokens and of draft tokens judged (a rejection ends
  // the judging of a chain). Start: a = 0.5 with the weight of two tokens.
  double hits_ = 1.0, tries_ = 2.0;
  ProbeSchedule probes_;  // gamma 1 tried now and then while AR steps are chosen
};

// A target pass's measured seconds for each step size s = 0..steps: rows_per_step * s
// draft rows plus the last committed token (s = 0: an AR step's single row).
std::vector<double> verify_costs(Model& target, int64_t steps, int64_t rows_per_step);

// The controller for a decoder's method, its cost table measured on the models: the target
// over gamma tokens per depth (width for multi-candidate MTAD's tree, else 1) plus the last
// committed one, the draft over one depth (width beams for MTAD, one token for SpS).
std::unique_ptr<DraftLength> make_draft_length(Model& target, Model& draft, const DecodeConfig& c);

}  // namespace mtad
