// The adaptive tri-gram table of ADED (algorithms.md 4): a flat open-addressing index
// from the context (a, b) to a row of successors in one entry pool, so that a table
// built from tens of MB of text loads with a few bulk reads and one pass over the rows.
#include "decode/aded/trigram.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <string>
#include <unistd.h>

#include "mtad/aded.h"
#include "mtad/errors.h"

namespace mtad {
namespace {

// Tri-grams pack into 64 bits as (a * V + b) * V + c.
constexpr int64_t kMaxVocab = int64_t(1) << 21;

uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Row order: higher value first, ties by the lower token id (deterministic drafts).
bool better(const TrigramTable::Entry& x, const TrigramTable::Entry& y) {
  return x.value > y.value || (x.value == y.value && x.token < y.token);
}

uint64_t read64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
uint32_t read32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// Closes a FILE* on every path out.
struct File {
  std::FILE* f = nullptr;
  ~File() {
    if (f) std::fclose(f);
  }
};

[[noreturn]] void format_error(const std::string& path, const std::string& what) {
  throw FormatError(path + ": " + what);
}

}  // namespace

uint64_t aded::checksum(const void* data, size_t bytes) {
  constexpr uint64_t P1 = 0x9E3779B185EBCA87ull, P2 = 0xC2B2AE3D27D4EB4Full, P3 = 0x165667B19E3779F9ull,
                     P4 = 0x85EBCA77C2B2AE63ull, P5 = 0x27D4EB2F165667C5ull;
  const auto rotl = [](uint64_t x, int r) { return (x << r) | (x >> (64 - r)); };
  const auto round = [&](uint64_t acc, uint64_t in) { return rotl(acc + in * P2, 31) * P1; };
  const auto merge = [&](uint64_t acc, uint64_t v) { return (acc ^ round(0, v)) * P1 + P4; };
  const auto* p = static_cast<const uint8_t*>(data);
  const uint8_t* end = p + bytes;
  uint64_t h;
  if (bytes >= 32) {
    uint64_t v1 = P1 + P2, v2 = P2, v3 = 0, v4 = 0 - P1;
    do {
      v1 = round(v1, read64(p));
      v2 = round(v2, read64(p + 8));
      v3 = round(v3, read64(p + 16));
      v4 = round(v4, read64(p + 24));
      p += 32;
    } while (end - p >= 32);
    h = rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18);
    h = merge(merge(merge(merge(h, v1), v2), v3), v4);
  } else {
    h = P5;
  }
  h += bytes;
  for (; end - p >= 8; p += 8) h = rotl(h ^ round(0, read64(p)), 27) * P1 + P4;
  if (end - p >= 4) {
    h = rotl(h ^ (uint64_t(read32(p)) * P1), 23) * P2 + P3;
    p += 4;
  }
  for (; p < end; ++p) h = rotl(h ^ (uint64_t(*p) * P5), 11) * P1;
  h ^= h >> 33;
  h *= P2;
  h ^= h >> 29;
  h *= P3;
  return h ^ (h >> 32);
}

void check_aded_params(const AdedParams& p) {
  const auto fail = [](const std::string& what) { throw InputError("aded: " + what); };
  const TrigramParams& t = p.table;
  const MctsParams& m = p.mcts;
  if (t.window < 0) fail("window must be >= 0");
  if (!(t.increment >= 0 && std::isfinite(t.increment))) fail("increment must be finite and >= 0");
  if (!(t.cap > 0 && std::isfinite(t.cap))) fail("cap must be finite and > 0");
  if (m.simulations < 0 || m.simulations > 1000000) fail("simulations must be in [0, 1000000]");
  if (m.depth < 1 || m.depth > 64) fail("depth must be in [1, 64]");
  if (!(m.c1 >= 0 && std::isfinite(m.c1))) fail("c1 must be finite and >= 0");
  if (!(m.c2 > 0 && std::isfinite(m.c2))) fail("c2 must be finite and > 0");
  if (m.paths < 0) fail("paths must be >= 0");
  if (m.max_nodes < 0 || m.max_nodes > 4096) fail("max_nodes must be in [0, 4096]");
  if (p.lookup < 0 || p.lookup > 64) fail("lookup must be in [0, 64]");
}

float TrigramTable::Row::value_of(int64_t token) const {
  for (const Entry& e : *this)
    if (e.token == token) return e.value;
  return 0.f;
}

TrigramTable::TrigramTable(int64_t vocab_size) : vocab_(vocab_size), mu_(std::make_unique<std::mutex>()) {
  if (vocab_size < 1 || vocab_size > kMaxVocab)
    throw InputError("TrigramTable: vocab_size must be in [1, " + std::to_string(kMaxVocab) + "], got " +
                     std::to_string(vocab_size));
}
TrigramTable::TrigramTable(TrigramTable&&) noexcept = default;
TrigramTable& TrigramTable::operator=(TrigramTable&&) noexcept = default;
TrigramTable::~TrigramTable() = default;

int64_t TrigramTable::num_entries() const {
  int64_t n = 0;
  for (const RowRef& r : rows_) n += r.size;
  return n;
}

uint64_t TrigramTable::key(int64_t a, int64_t b) const {
  if (a < 0 || a >= vocab_ || b < 0 || b >= vocab_)
    throw InputError("TrigramTable: token id " + std::to_string(a < 0 || a >= vocab_ ? a : b) +
                     " is outside the vocabulary [0, " + std::to_string(vocab_) + ")");
  return uint64_t(a) * uint64_t(vocab_) + uint64_t(b);
}

int64_t TrigramTable::find(uint64_t k) const {
  if (index_.empty()) return -1;
  const uint64_t mask = index_.size() - 1;
  for (uint64_t i = mix64(k) & mask;; i = (i + 1) & mask) {
    const uint32_t r = index_[i];
    if (r == 0) return -1;
    if (rows_[r - 1].key == k) return r - 1;
  }
}

void TrigramTable::insert_index(uint64_t k, uint32_t row) {
  const uint64_t mask = index_.size() - 1;
  uint64_t i = mix64(k) & mask;
  while (index_[i] != 0) i = (i + 1) & mask;
  index_[i] = row + 1;
}

void TrigramTable::rehash(uint64_t slots) {
  uint64_t n = 16;
  while (n < slots) n <<= 1;
  index_.assign(n, 0);
  for (size_t r = 0; r < rows_.size(); ++r) insert_index(rows_[r].key, static_cast<uint32_t>(r));
}

int64_t TrigramTable::find_or_insert(uint64_t k) {
  const int64_t found = find(k);
  if (found >= 0) return found;
  if (rows_.size() >= std::numeric_limits<uint32_t>::max() - 1) throw InputError("TrigramTable: too many contexts");
  // Load factor at most 1/2 keeps the probe chains short.
  if (2 * (rows_.size() + 1) > index_.size()) rehash(std::max<uint64_t>(16, 2 * index_.size()));
  rows_.push_back({k, static_cast<uint32_t>(pool_.size()), 0, 0});
  insert_index(k, static_cast<uint32_t>(rows_.size() - 1));
  return static_cast<int64_t>(rows_.size() - 1);
}

TrigramTable::Entry* TrigramTable::grow(RowRef& r, uint32_t need) {
  if (need > r.capacity) {
    // Move the row to the end of the pool with room to spare (its old place is left
    // unused: rows grow rarely, by adaptation only).
    const uint64_t cap = std::max<uint64_t>({need, 4, 2 * uint64_t(r.capacity)});
    const uint64_t at = pool_.size();
    if (at + cap > std::numeric_limits<uint32_t>::max()) throw InputError("TrigramTable: entry pool is full");
    pool_.resize(at + cap);
    std::copy_n(pool_.begin() + r.offset, r.size, pool_.begin() + at);
    r.offset = static_cast<uint32_t>(at);
    r.capacity = static_cast<uint32_t>(cap);
  }
  return pool_.data() + r.offset;
}

void TrigramTable::sort_row(RowRef& r) {
  Entry* e = pool_.data() + r.offset;
  std::sort(e, e + r.size, better);
}

TrigramTable::Row TrigramTable::row(int64_t a, int64_t b) const {
  const int64_t r = find(key(a, b));
  if (r < 0) return {};
  return {pool_.data() + rows_[r].offset, rows_[r].size};
}

void TrigramTable::add(int64_t a, int64_t b, int64_t c, double delta, double cap) {
  if (c < 0 || c >= vocab_)
    throw InputError("TrigramTable: token id " + std::to_string(c) + " is outside the vocabulary [0, " +
                     std::to_string(vocab_) + ")");
  RowRef& r = rows_[find_or_insert(key(a, b))];
  Entry* e = pool_.data() + r.offset;
  uint32_t i = 0;
  while (i < r.size && e[i].token != c) ++i;
  if (i == r.size) {
    e = grow(r, r.size + 1);
    e[r.size++] = {static_cast<int32_t>(c), 0.f};
  }
  // Never lowers a value that already sits above the cap.
  e[i].value = std::max(e[i].value, static_cast<float>(std::min(cap, double(e[i].value) + delta)));
  // The value only grew: one insertion step restores the order.
  for (; i > 0 && better(e[i], e[i - 1]); --i) std::swap(e[i], e[i - 1]);
}

void TrigramTable::adapt(const int64_t* tokens, int64_t n, const TrigramParams& p) {
  if (p.increment <= 0) return;
  for (int64_t i = std::max<int64_t>(0, n - p.window); i + 2 < n; ++i)
    add(tokens[i], tokens[i + 1], tokens[i + 2], p.increment, p.cap);
}

void TrigramTable::add_sequence(const int64_t* ids, int64_t n) {
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= vocab_)
      throw InputError("TrigramTable.add_sequence: ids[" + std::to_string(i) + "] = " + std::to_string(ids[i]) +
                       " is outside the vocabulary [0, " + std::to_string(vocab_) + ")");
  const uint64_t V = uint64_t(vocab_);
  if (n >= 3) pending_.reserve(pending_.size() + size_t(n - 2));
  for (int64_t i = 0; i + 2 < n; ++i)
    pending_.push_back((uint64_t(ids[i]) * V + uint64_t(ids[i + 1])) * V + uint64_t(ids[i + 2]));
}

void TrigramTable::finalize(int64_t max_successors) {
  if (max_successors < 0) throw InputError("TrigramTable.finalize: max_successors must be >= 0 (0 keeps all)");
  if (pending_.empty()) return;
  std::sort(pending_.begin(), pending_.end());
  const uint64_t V = uint64_t(vocab_);
  // Room for every new context up front: one rehash instead of many.
  uint64_t contexts = 0;
  for (size_t i = 0; i < pending_.size(); ++i)
    if (i == 0 || pending_[i] / V != pending_[i - 1] / V) ++contexts;
  if (2 * (rows_.size() + contexts) > index_.size()) rehash(2 * (rows_.size() + contexts));

  std::vector<Entry> fresh;
  for (size_t i = 0; i < pending_.size();) {
    const uint64_t ctx = pending_[i] / V;
    fresh.clear();
    uint64_t total = 0;
    while (i < pending_.size() && pending_[i] / V == ctx) {
      const uint64_t t = pending_[i];
      uint32_t count = 0;
      for (; i < pending_.size() && pending_[i] == t; ++i) ++count;
      fresh.push_back({static_cast<int32_t>(t % V), static_cast<float>(count)});
      total += count;
    }
    for (Entry& e : fresh) e.value = static_cast<float>(double(e.value) / double(total));
    std::sort(fresh.begin(), fresh.end(), better);
    if (max_successors > 0 && int64_t(fresh.size()) > max_successors) fresh.resize(size_t(max_successors));

    const bool existed = find(ctx) >= 0;
    RowRef& r = rows_[find_or_insert(ctx)];
    if (!existed) {
      Entry* e = grow(r, static_cast<uint32_t>(fresh.size()));
      std::copy(fresh.begin(), fresh.end(), e);
      r.size = static_cast<uint32_t>(fresh.size());
      continue;
    }
    // Merge into an existing row: values add, then the row is re-sorted and pruned.
    for (const Entry& f : fresh) {
      Entry* e = pool_.data() + r.offset;
      uint32_t j = 0;
      while (j < r.size && e[j].token != f.token) ++j;
      if (j == r.size) {
        e = grow(r, r.size + 1);
        e[r.size++] = {f.token, 0.f};
      }
      e[j].value += f.value;
    }
    sort_row(r);
    if (max_successors > 0 && int64_t(r.size) > max_successors) r.size = static_cast<uint32_t>(max_successors);
  }
  pending_.clear();
  pending_.shrink_to_fit();
}

void TrigramTable::prune(int64_t max_successors) {
  if (max_successors < 0) throw InputError("TrigramTable.prune: max_successors must be >= 0 (0 keeps all)");
  if (max_successors == 0) return;
  for (RowRef& r : rows_) r.size = std::min<uint32_t>(r.size, static_cast<uint32_t>(max_successors));
}

void TrigramTable::save(const std::string& path) const {
  std::vector<uint32_t> order;
  order.reserve(rows_.size());
  for (size_t r = 0; r < rows_.size(); ++r)
    if (rows_[r].size > 0) order.push_back(static_cast<uint32_t>(r));
  std::sort(order.begin(), order.end(), [&](uint32_t x, uint32_t y) { return rows_[x].key < rows_[y].key; });
  uint64_t C = order.size(), E = 0;
  for (uint32_t r : order) E += rows_[r].size;

  // The payload is built in memory: the checksum goes into the header before it.
  std::vector<uint8_t> payload(aded::payload_bytes(C, E));
  uint8_t* keys = payload.data();
  uint8_t* sizes = keys + C * 8;
  uint8_t* tokens = sizes + C * 4;
  uint8_t* values = tokens + E * 4;
  uint64_t at = 0;
  for (uint64_t i = 0; i < C; ++i) {
    const RowRef& r = rows_[order[i]];
    std::memcpy(keys + i * 8, &r.key, 8);
    std::memcpy(sizes + i * 4, &r.size, 4);
    for (uint32_t j = 0; j < r.size; ++j, ++at) {
      const Entry& e = pool_[r.offset + j];
      const uint32_t tok = static_cast<uint32_t>(e.token);
      std::memcpy(tokens + at * 4, &tok, 4);
      std::memcpy(values + at * 4, &e.value, 4);
    }
  }
  aded::FileHeader h{};
  std::memcpy(h.magic, aded::kMagic, 8);
  h.version = aded::kVersion;
  h.header_bytes = sizeof(aded::FileHeader);
  h.vocab_size = uint64_t(vocab_);
  h.contexts = C;
  h.entries = E;
  h.payload_bytes = payload.size();
  h.checksum = aded::checksum(payload.data(), payload.size());

  // Written beside the target and renamed over it: readers see the old or the new file.
  const std::string tmp = path + ".tmp" + std::to_string(::getpid());
  {
    File f{std::fopen(tmp.c_str(), "wb")};
    if (!f.f) throw Error(path + ": cannot write the tri-gram table: " + std::strerror(errno));
    const bool ok = std::fwrite(&h, sizeof h, 1, f.f) == 1 &&
                    (payload.empty() || std::fwrite(payload.data(), payload.size(), 1, f.f) == 1) &&
                    std::fflush(f.f) == 0;
    if (!ok) {
      const std::string why = std::strerror(errno);
      std::remove(tmp.c_str());
      throw Error(path + ": cannot write the tri-gram table: " + why);
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    throw Error(path + ": cannot write the tri-gram table: " + why);
  }
}

TrigramTable TrigramTable::load(const std::string& path, int64_t expected_vocab, int64_t max_successors) {
  if (max_successors < 0) throw InputError("TrigramTable.load: max_successors must be >= 0 (0 keeps all)");
  File f{std::fopen(path.c_str(), "rb")};
  if (!f.f) {
    if (errno == ENOENT) throw FileNotFound(path + ": no such tri-gram table file");
    throw Error(path + ": cannot open the tri-gram table: " + std::strerror(errno));
  }
  std::error_code ec;
  const uint64_t size = std::filesystem::file_size(path, ec);
  if (ec) throw Error(path + ": cannot read the tri-gram table: " + ec.message());

  aded::FileHeader h{};
  const size_t got = std::fread(&h, 1, sizeof h, f.f);
  if (got >= 8 && std::memcmp(h.magic, aded::kMagic, 8) != 0)
    format_error(path, "not a tri-gram table file (bad magic)");
  if (got < sizeof h)
    format_error(path, "truncated: " + std::to_string(size) + " bytes, less than the " +
                           std::to_string(sizeof h) + "-byte header");
  if (h.version != aded::kVersion)
    format_error(path, "tri-gram table file version " + std::to_string(h.version) + ", this build reads version " +
                           std::to_string(aded::kVersion));
  if (h.header_bytes != sizeof h) format_error(path, "bad header size " + std::to_string(h.header_bytes));
  if (h.vocab_size < 1 || h.vocab_size > uint64_t(kMaxVocab))
    format_error(path, "vocabulary size " + std::to_string(h.vocab_size) + " is out of range");
  if (expected_vocab >= 0 && h.vocab_size != uint64_t(expected_vocab))
    throw InputError(path + ": the tri-gram table was built for a vocabulary of " + std::to_string(h.vocab_size) +
                     " tokens, but the model has " + std::to_string(expected_vocab));
  // Bounds before arithmetic: the sizes below cannot overflow.
  if (h.contexts > (uint64_t(1) << 40) || h.entries > (uint64_t(1) << 40) ||
      h.payload_bytes != aded::payload_bytes(h.contexts, h.entries))
    format_error(path, "inconsistent header (contexts " + std::to_string(h.contexts) + ", entries " +
                           std::to_string(h.entries) + ", payload " + std::to_string(h.payload_bytes) + " bytes)");
  if (size < sizeof h + h.payload_bytes)
    format_error(path, "truncated: " + std::to_string(size - sizeof h) + " payload bytes, the header says " +
                           std::to_string(h.payload_bytes));
  if (size > sizeof h + h.payload_bytes)
    format_error(path, std::to_string(size - sizeof h - h.payload_bytes) + " unexpected bytes after the table");

  std::vector<uint8_t> payload(h.payload_bytes);
  if (!payload.empty() && std::fread(payload.data(), payload.size(), 1, f.f) != 1)
    format_error(path, "truncated while reading the payload");
  if (aded::checksum(payload.data(), payload.size()) != h.checksum)
    format_error(path, "checksum mismatch: the file is corrupt");

  const uint64_t C = h.contexts, E = h.entries, V = h.vocab_size;
  const uint8_t* keys = payload.data();
  const uint8_t* sizes = keys + C * 8;
  const uint8_t* tokens = sizes + C * 4;
  const uint8_t* values = tokens + E * 4;

  TrigramTable t(static_cast<int64_t>(V));
  uint64_t kept = 0, total = 0, longest = 0;
  for (uint64_t i = 0; i < C; ++i) {
    const uint32_t n = read32(sizes + i * 4);
    total += n;
    longest = std::max<uint64_t>(longest, n);
    kept += max_successors > 0 ? std::min<uint64_t>(n, uint64_t(max_successors)) : n;
  }
  if (total != E) format_error(path, "row sizes add up to " + std::to_string(total) + ", not " + std::to_string(E));
  if (kept > std::numeric_limits<uint32_t>::max()) format_error(path, "too many entries");
  t.rows_.reserve(C);
  t.pool_.reserve(kept + longest);  // a row is read whole, then pruned
  t.rehash(2 * C);
  uint64_t at = 0, prev = 0;
  for (uint64_t i = 0; i < C; ++i) {
    const uint64_t k = read64(keys + i * 8);
    const uint32_t n = read32(sizes + i * 4);
    if (k >= V * V || (i > 0 && k <= prev))
      format_error(path, "context " + std::to_string(i) + " is out of range or out of order");
    if (n == 0) format_error(path, "context " + std::to_string(i) + " has an empty row");
    prev = k;
    RowRef r{k, static_cast<uint32_t>(t.pool_.size()), n, 0};
    for (uint32_t j = 0; j < n; ++j, ++at) {
      const uint32_t tok = read32(tokens + at * 4);
      float val;
      std::memcpy(&val, values + at * 4, 4);
      if (tok >= V) format_error(path, "entry " + std::to_string(at) + " has token " + std::to_string(tok) +
                                           " outside the vocabulary");
      if (!(val >= 0.f) || !std::isfinite(val))
        format_error(path, "entry " + std::to_string(at) + " has value " + std::to_string(val));
      t.pool_.push_back({static_cast<int32_t>(tok), val});
    }
    t.sort_row(r);  // rows are saved sorted; this keeps the invariant for any writer
    if (max_successors > 0 && r.size > uint64_t(max_successors)) {
      r.size = static_cast<uint32_t>(max_successors);
      t.pool_.resize(r.offset + r.size);
    }
    r.capacity = r.size;
    t.rows_.push_back(r);
    t.insert_index(k, static_cast<uint32_t>(t.rows_.size() - 1));
  }
  return t;
}

}  // namespace mtad
