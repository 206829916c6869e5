// libFuzzer target: the tri-gram table loader (TrigramTable::load). The checksum field is
// recomputed over the input's payload first, so that mutations reach the row parsing
// instead of stopping at "checksum mismatch". A loaded table must answer lookups.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "decode/aded/trigram.h"
#include "fuzz_file.h"
#include "mtad/aded.h"
#include "mtad/errors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> bytes(data, data + size);
  constexpr size_t H = sizeof(mtad::aded::FileHeader);
  if (size >= H) {
    mtad::aded::FileHeader h;
    std::memcpy(&h, bytes.data(), H);
    h.checksum = mtad::aded::checksum(bytes.data() + H, size - H);
    std::memcpy(bytes.data(), &h, H);
  }
  const std::string path = fuzz::write_input("table.mtri", bytes.data(), bytes.size());
  try {
    const mtad::TrigramTable t = mtad::TrigramTable::load(path, -1, size % 3 == 0 ? 0 : 12);
    const int64_t V = t.vocab_size();
    for (int64_t a = 0; a < std::min<int64_t>(V, 4); ++a)
      for (int64_t b = 0; b < std::min<int64_t>(V, 4); ++b) (void)t.row(a, b);
  } catch (const mtad::Error&) {
  }
  return 0;
}
