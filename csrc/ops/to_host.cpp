#include "ops/to_host.h"

#include <ATen/ATen.h>

#include <atomic>

namespace mtad::ops {
namespace {

std::atomic<int64_t> g_reads{0};

}  // namespace

at::Tensor to_host(const at::Tensor& t) {
  g_reads.fetch_add(1, std::memory_order_relaxed);
  return t.is_cpu() ? t.contiguous() : t.to(at::kCPU).contiguous();
}

void count_host_read() { g_reads.fetch_add(1, std::memory_order_relaxed); }

int64_t host_reads() { return g_reads.load(std::memory_order_relaxed); }

}  // namespace mtad::ops
