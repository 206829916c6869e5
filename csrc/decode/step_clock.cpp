#include "decode/step_clock.h"

#include <algorithm>

#ifdef MTAD_WITH_CUDA
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#endif

namespace mtad {

#ifdef MTAD_WITH_CUDA
namespace {

// One timing event, created on the current device.
struct Event {
  Event() { C10_CUDA_CHECK(cudaEventCreate(&e)); }
  ~Event() { cudaEventDestroy(e); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t e = nullptr;
};

}  // namespace

// The draft phase's start and end, on the device's current stream (the one every op queues on).
struct StepClock::DeviceEvents {
  explicit DeviceEvents(const at::Device& device)
      : device(device), stream(c10::cuda::getCurrentCUDAStream(device.index()).stream()) {}
  void record(const Event& ev) {
    const c10::cuda::CUDAGuard guard(device);
    C10_CUDA_CHECK(cudaEventRecord(ev.e, stream));
  }
  // Seconds between the two, or -1 when the device has not reached them (no waiting here).
  double elapsed() const {
    float ms = 0.f;
    if (cudaEventQuery(end.e) != cudaSuccess || cudaEventElapsedTime(&ms, start.e, end.e) != cudaSuccess) {
      (void)cudaGetLastError();  // not ready: no error of the step's
      return -1;
    }
    return ms / 1000.0;
  }
  at::Device device;
  cudaStream_t stream;
  Event start, end;  // made after the guard below has set the device
};
#else
struct StepClock::DeviceEvents {};
#endif

StepClock::StepClock(const at::Device& device) {
#ifdef MTAD_WITH_CUDA
  if (device.is_cuda()) {
    const c10::cuda::CUDAGuard guard(device);  // the events belong to the model's device
    events_ = std::make_unique<DeviceEvents>(device);
    events_->record(events_->start);
  }
#else
  (void)device;
#endif
  start_ = drafted_ = verified_ = committed_ = Clock::now();
}

StepClock::~StepClock() = default;

void StepClock::drafted() {
  has_draft_ = true;
#ifdef MTAD_WITH_CUDA
  if (events_) events_->record(events_->end);
#endif
  drafted_ = Clock::now();
}

void StepClock::verified() {
  verified_ = Clock::now();
#ifdef MTAD_WITH_CUDA
  // The verdict's read waited for everything queued before it, the draft's events too.
  if (events_ && has_draft_) device_draft_s_ = events_->elapsed();
#endif
}

void StepClock::committed() { committed_ = Clock::now(); }

void StepClock::finish(StepStats& s) const {
  const double until_verdict = since(start_, verified_), total = since(start_, Clock::now());
  // The device's draft time where there is one; it ends before the verdict is read.
  s.draft_s = device_draft_s_ >= 0 ? std::min(device_draft_s_, until_verdict) : since(start_, drafted_);
  s.verify_s = until_verdict - s.draft_s;
  s.rollback_s = since(verified_, committed_);
  s.other_s = std::max(0.0, total - s.draft_s - s.verify_s - s.rollback_s);
}

}  // namespace mtad
