// Every device-to-host read on the decode path goes through to_host(), which counts it: on a
// GPU each one is a synchronisation (the host waits for the device's queue to drain), so the
// count per step is the number of round trips a step makes (issue 29: at most 2). The CPU
// path calls it at the same points, so that tests on the CPU assert the count per step.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace mtad::ops {

// A contiguous host copy of t (t itself when it is a contiguous CPU tensor); counts one read.
at::Tensor to_host(const at::Tensor& t);
// One host read made without a tensor copy (a CPU kernel's branch standing for the CUDA
// branch's copy, so that both count the same).
void count_host_read();
// Reads since the process started (all threads).
int64_t host_reads();

}  // namespace mtad::ops
