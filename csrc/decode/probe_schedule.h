// When a self-tuning controller (decode/draft_length.h, decode/tree_budget.h) tries a
// setting its estimates advise against: the text may have turned predictable again, or a
// larger draft may pay now. Probes come every `every` steps, from 8, twice as far apart
// after each probe that taught nothing (up to 64), back to 8 after one that paid.
#pragma once

#include <algorithm>
#include <cstdint>

namespace mtad {

class ProbeSchedule {
 public:
  void reset() { *this = ProbeSchedule{}; }
  // One more step without a probe; true when the next one is due (and counts as started).
  bool due() {
    if (++steps_ < every_) return false;
    steps_ = 0;
    probing_ = true;
    return true;
  }
  // A step that needed no probe (the estimates already ask for what would be probed).
  void skip() { steps_ = 0; }
  bool probing() const { return probing_; }
  // The answer to the probe under way: whether it changed the controller's choice.
  void answered(bool paid) {
    probing_ = false;
    every_ = paid ? kFirst : std::min(every_ * 2, kLast);
  }

 private:
  static constexpr int64_t kFirst = 8, kLast = 64;
  int64_t steps_ = 0, every_ = kFirst;
  bool probing_ = false;
};

}  // namespace mtad
