// The tri-gram table file (ADED, algorithms.md 4) and the checksum over its payload.
// Little-endian throughout:
//   header (64 bytes): magic "MTADTRI\0", u32 version, u32 header bytes, u64 vocabulary
//     size, u64 contexts C, u64 entries E, u64 payload bytes, u64 checksum, u64 reserved
//   payload: u64 keys[C] (a * V + b, strictly increasing), u32 row sizes[C],
//     u32 tokens[E], f32 values[E] (rows in key order, each best first)
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace mtad::aded {

inline constexpr char kMagic[8] = {'M', 'T', 'A', 'D', 'T', 'R', 'I', '\0'};
inline constexpr uint32_t kVersion = 1;

struct FileHeader {
  char magic[8];
  uint32_t version;
  uint32_t header_bytes;
  uint64_t vocab_size;
  uint64_t contexts;
  uint64_t entries;
  uint64_t payload_bytes;
  uint64_t checksum;
  uint64_t reserved;
};
static_assert(sizeof(FileHeader) == 64, "the header is 64 bytes on disk");
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the tri-gram file is read and written as little-endian memory"
#endif

inline constexpr uint64_t payload_bytes(uint64_t contexts, uint64_t entries) {
  return contexts * (sizeof(uint64_t) + sizeof(uint32_t)) + entries * (sizeof(uint32_t) + sizeof(float));
}

// A 64-bit hash of the payload (xxHash64's structure: four lanes of 8-byte words, then
// an avalanche), several GB/s, so checking a large table costs little at load.
uint64_t checksum(const void* data, size_t bytes);

}  // namespace mtad::aded
