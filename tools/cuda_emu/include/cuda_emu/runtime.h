// Host-side control of the CUDA emulation (runtime.cpp): the error type launches throw, the
// thread order, and counters for reports.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace cuda_emu {

// A launch that a GPU would reject, or a kernel that misuses a barrier, a warp collective or
// shared memory; the message starts with file:line of the offending code.
struct KernelError : std::runtime_error {
  explicit KernelError(const std::string& what) : std::runtime_error(what) {}
};

// The order in which runnable threads (and the blocks of a grid) are picked.
enum class Order { Forward = 0, Reverse = 1, Random = 2 };
void set_order(Order order, uint64_t seed);
Order order();

// The static shared memory a block may declare (48 KiB, as on every GPU); returns the old
// limit. Lowering it lets a test provoke an error inside a running block.
size_t set_static_smem_limit(size_t bytes);

struct Stats {
  uint64_t launches = 0, blocks = 0, threads = 0, switches = 0, warp_collectives = 0;
};
Stats stats();

}  // namespace cuda_emu
