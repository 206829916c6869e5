// Counter-based random numbers shared by the CPU and CUDA kernels: the uniform for
// (seed, counter) is a pure function, so both devices draw the same numbers and a
// seeded run is reproducible whatever the thread layout.
#pragma once

#include <cstdint>

#include "ops/detail/common.h"  // MTAD_HD

namespace mtad::rng {

// SplitMix64 finaliser over the pair: full avalanche, cheap on both devices.
MTAD_HD uint64_t mix(uint64_t seed, uint64_t counter) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ull + counter + 0x632BE59BD9B4E019ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z = z ^ (z >> 31);
  z += 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Uniform in the open interval (0, 1) from the top 23 bits: k + 0.5 stays exact in a
// float32 (24 bits would round the largest k up to exactly 1.0).
MTAD_HD float uniform(uint64_t seed, uint64_t counter) {
  return (static_cast<float>(mix(seed, counter) >> 41) + 0.5f) * (1.0f / 8388608.0f);
}

}  // namespace mtad::rng
