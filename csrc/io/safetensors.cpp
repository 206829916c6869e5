#include "io/safetensors.h"

#include <ATen/ATen.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "mtad/errors.h"

namespace mtad {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

// Headers beyond this are surely corrupt (the format's own readers use the same cap).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw FormatError(path + ": " + what);
}

std::optional<at::ScalarType> scalar_type(const std::string& dtype) {
  if (dtype == "F32") return at::kFloat;
  if (dtype == "F16") return at::kHalf;
  if (dtype == "BF16") return at::kBFloat16;
  if (dtype == "F64") return at::kDouble;
  if (dtype == "I64") return at::kLong;
  if (dtype == "I32") return at::kInt;
  if (dtype == "I16") return at::kShort;
  if (dtype == "I8") return at::kChar;
  if (dtype == "U8") return at::kByte;
  if (dtype == "BOOL") return at::kBool;
  return std::nullopt;
}

}  // namespace

size_t safetensors_dtype_size(const std::string& dtype) {
  static const std::map<std::string, size_t> sizes = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4},
      {"I16", 2}, {"I8", 1},  {"U8", 1},  {"BOOL", 1}, {"U16", 2}, {"U32", 4},
      {"U64", 8}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
  auto it = sizes.find(dtype);
  return it == sizes.end() ? 0 : it->second;
}

// RAII owner of the file mapping; tensors keep it alive through shared_ptr.
struct SafetensorsFile::Mapping {
  void* addr = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (addr != nullptr && addr != MAP_FAILED) munmap(addr, size);
  }
};

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) throw FileNotFound(path + ": no such file");
    throw FormatError(path + ": cannot open: " + std::strerror(errno));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail(path, "not a regular file");
  }
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    fail(path, "truncated: " + std::to_string(file_size) + " bytes, smaller than the 8-byte header length");
  }
  map_ = std::make_shared<Mapping>();
  map_->size = file_size;
  // Private writable mapping: writes to a weight tensor copy the page instead of faulting.
  map_->addr = mmap(nullptr, file_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_->addr == MAP_FAILED) fail(path, std::string("mmap failed: ") + std::strerror(errno));

  const auto* bytes = static_cast<const uint8_t*>(map_->addr);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes, 8);  // little-endian u64, as the format specifies
  if (header_len > kMaxHeaderBytes) {
    fail(path, "header length " + std::to_string(header_len) + " is implausibly large");
  }
  if (8 + header_len > file_size) {
    fail(path, "header length " + std::to_string(header_len) + " runs past the end of the file (" +
                   std::to_string(file_size) + " bytes)");
  }
  data_start_ = 8 + header_len;
  const uint64_t data_size = file_size - data_start_;

  json header;
  try {
    header = json::parse(reinterpret_cast<const char*>(bytes + 8),
                         reinterpret_cast<const char*>(bytes + 8 + header_len));
  } catch (const json::exception& e) {
    fail(path, std::string("malformed header JSON: ") + e.what());
  }
  if (!header.is_object()) fail(path, "header is not a JSON object");

  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") continue;
    const std::string where = "tensor '" + name + "'";
    if (!entry.is_object()) fail(path, where + ": header entry is not an object");
    if (!entry.contains("dtype") || !entry["dtype"].is_string())
      fail(path, where + ": missing string field 'dtype'");
    if (!entry.contains("shape") || !entry["shape"].is_array())
      fail(path, where + ": missing array field 'shape'");
    if (!entry.contains("data_offsets") || !entry["data_offsets"].is_array() ||
        entry["data_offsets"].size() != 2)
      fail(path, where + ": missing field 'data_offsets' [begin, end]");
    TensorInfo info;
    info.name = name;
    info.dtype = entry["dtype"].get<std::string>();
    const size_t elem = safetensors_dtype_size(info.dtype);
    if (elem == 0) fail(path, where + ": unknown dtype '" + info.dtype + "'");
    uint64_t numel = 1;
    for (const auto& d : entry["shape"]) {
      if (!d.is_number_unsigned()) fail(path, where + ": shape holds a non-integer or negative dimension");
      const uint64_t v = d.get<uint64_t>();
      if (v > (1ull << 40) || (v != 0 && numel > (1ull << 40) / v))
        fail(path, where + ": shape is implausibly large");
      numel *= v;
      info.shape.push_back(static_cast<int64_t>(v));
    }
    for (const auto& o : entry["data_offsets"])
      if (!o.is_number_unsigned()) fail(path, where + ": data_offsets must be non-negative integers");
    info.begin = entry["data_offsets"][0].get<uint64_t>();
    info.end = entry["data_offsets"][1].get<uint64_t>();
    if (info.begin > info.end) fail(path, where + ": data_offsets begin after they end");
    if (info.end > data_size)
      fail(path, where + ": data_offsets [" + std::to_string(info.begin) + ", " + std::to_string(info.end) +
                     "] run past the end of the data (" + std::to_string(data_size) + " bytes): truncated file?");
    if (info.end - info.begin != numel * elem)
      fail(path, where + ": data_offsets span " + std::to_string(info.end - info.begin) +
                     " bytes but dtype " + info.dtype + " and shape need " + std::to_string(numel * elem));
    infos_.emplace(name, std::move(info));
  }

  // No two tensors may share bytes.
  std::vector<const TensorInfo*> order;
  for (const auto& kv : infos_) order.push_back(&kv.second);
  std::sort(order.begin(), order.end(),
            [](const TensorInfo* a, const TensorInfo* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < order.size(); ++i) {
    if (order[i]->begin < order[i - 1]->end && order[i]->begin != order[i]->end)
      fail(path, "tensors '" + order[i - 1]->name + "' and '" + order[i]->name + "' overlap in the data section");
  }
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = infos_.find(name);
  if (it == infos_.end()) throw WeightError(path_ + ": no tensor '" + name + "'");
  return it->second;
}

at::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const TensorInfo& ti = info(name);
  auto st = scalar_type(ti.dtype);
  if (!st) throw WeightError(path_ + ": tensor '" + name + "' has dtype " + ti.dtype + ", which mtad cannot load");
  auto* ptr = static_cast<uint8_t*>(map_->addr) + data_start_ + ti.begin;
  const size_t elem = safetensors_dtype_size(ti.dtype);
  auto opts = at::TensorOptions().dtype(*st).device(at::kCPU);
  if (ti.end == ti.begin) return at::empty(ti.shape, opts);
  if (reinterpret_cast<uintptr_t>(ptr) % elem != 0) {
    // Misaligned for its dtype: copy once rather than hand out unaligned elements.
    at::Tensor out = at::empty(ti.shape, opts);
    std::memcpy(out.data_ptr(), ptr, ti.end - ti.begin);
    return out;
  }
  std::shared_ptr<Mapping> keep = map_;
  return at::from_blob(ptr, ti.shape, [keep](void*) mutable { keep.reset(); }, opts);
}

WeightFolder::WeightFolder(const std::string& dir) : dir_(dir) {
  const fs::path root(dir);
  if (!fs::is_directory(root)) throw FileNotFound(dir + ": no such model folder");
  const fs::path single = root / "model.safetensors";
  const fs::path index = root / "model.safetensors.index.json";
  std::vector<std::string> shard_names;
  std::map<std::string, std::string> weight_map;
  if (fs::exists(index)) {
    std::ifstream in(index);
    json j;
    try {
      j = json::parse(in);
    } catch (const json::exception& e) {
      throw FormatError(index.string() + ": malformed JSON: " + e.what());
    }
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      throw FormatError(index.string() + ": missing object 'weight_map'");
    std::set<std::string> shards;
    for (auto& [name, file] : j["weight_map"].items()) {
      if (!file.is_string()) throw FormatError(index.string() + ": weight_map['" + name + "'] is not a file name");
      const std::string f = file.get<std::string>();
      if (f.find('/') != std::string::npos || f.find("..") != std::string::npos)
        throw FormatError(index.string() + ": weight_map['" + name + "'] names a file outside the folder: " + f);
      weight_map[name] = f;
      shards.insert(f);
    }
    shard_names.assign(shards.begin(), shards.end());
  } else if (fs::exists(single)) {
    shard_names.push_back("model.safetensors");
  } else {
    throw FileNotFound(dir + ": holds neither model.safetensors nor model.safetensors.index.json");
  }
  std::map<std::string, const SafetensorsFile*> by_file;
  for (const auto& s : shard_names) {
    files_.push_back(std::make_unique<SafetensorsFile>((root / s).string()));
    by_file[s] = files_.back().get();
  }
  if (weight_map.empty()) {
    for (const auto& [name, _] : files_.front()->tensors()) where_[name] = files_.front().get();
  } else {
    for (const auto& [name, file] : weight_map) {
      const SafetensorsFile* f = by_file.at(file);
      if (!f->contains(name))
        throw WeightError(index.string() + ": lists tensor '" + name + "' in " + file + ", which does not hold it");
      where_[name] = f;
    }
    for (const auto& f : files_)
      for (const auto& [name, _] : f->tensors())
        if (!where_.count(name))
          throw WeightError(f->path() + ": holds tensor '" + name + "', which the index does not list");
  }
}

std::vector<std::string> WeightFolder::names() const {
  std::vector<std::string> out;
  for (const auto& kv : where_) out.push_back(kv.first);
  return out;
}

const TensorInfo& WeightFolder::info(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) throw WeightError(dir_ + ": missing tensor '" + name + "'");
  return it->second->info(name);
}

at::Tensor WeightFolder::get(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) throw WeightError(dir_ + ": missing tensor '" + name + "'");
  return it->second->tensor(name);
}

}  // namespace mtad
