// The step's time split (StepStats: draft_s, verify_s, rollback_s, other_s), adding up to
// the step's wall time. On the CPU each phase is the wall time of its scope. On a GPU the
// host only queues the draft's work, which then finishes inside whichever phase next
// waits for the device (the verdict's read): there the draft phase is measured by CUDA
// events recorded at its start and end, read after the verdict's read, which has already
// waited for both (no synchronisation of its own), and verify takes the rest of the time
// until that read returns.
#pragma once

#include <ATen/core/Tensor.h>

#include <chrono>
#include <memory>

#include "mtad/decoder.h"

namespace mtad {

class StepClock {
 public:
  // Starts the step on `device`.
  explicit StepClock(const at::Device& device);
  ~StepClock();
  StepClock(const StepClock&) = delete;
  StepClock& operator=(const StepClock&) = delete;

  // Phase boundaries, in order: the draft is proposed (skip when the step drafts nothing),
  // the verdict has been read back (the step's last read), the caches are committed.
  void drafted();
  void verified();
  void committed();
  // Writes the split; other_s is the step's wall time not in a phase (never negative).
  void finish(StepStats& s) const;

 private:
  using Clock = std::chrono::steady_clock;
  static double since(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }
  struct DeviceEvents;  // CUDA events of the draft phase (null on the CPU)
  std::unique_ptr<DeviceEvents> events_;
  Clock::time_point start_, drafted_, verified_, committed_;
  bool has_draft_ = false;
  double device_draft_s_ = -1;  // from the events, once read (-1: none)
};

}  // namespace mtad
