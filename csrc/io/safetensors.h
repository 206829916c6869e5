// Native safetensors reader: maps the file read-only (copy-on-write), validates the
// header against the file, and hands out tensors that alias the mapping.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace mtad {

struct TensorInfo {
  std::string name;
  std::string dtype;  // as written in the header: "F32", "F16", "BF16", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets relative to the start of the data section
  uint64_t end = 0;
};

class SafetensorsFile {
 public:
  // Maps and validates `path`; throws FileNotFound or FormatError naming the file.
  explicit SafetensorsFile(const std::string& path);

  const std::string& path() const { return path_; }
  const std::map<std::string, TensorInfo>& tensors() const { return infos_; }
  bool contains(const std::string& name) const { return infos_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;
  // A CPU tensor over the mapped bytes (no copy when they are aligned for the dtype).
  at::Tensor tensor(const std::string& name) const;

 private:
  struct Mapping;
  std::string path_;
  std::shared_ptr<Mapping> map_;
  uint64_t data_start_ = 0;
  std::map<std::string, TensorInfo> infos_;
};

// A model folder's weights: model.safetensors, or shards listed by
// model.safetensors.index.json. Lookups name the folder and tensor on failure.
class WeightFolder {
 public:
  explicit WeightFolder(const std::string& dir);

  const std::string& dir() const { return dir_; }
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const { return where_.count(name) != 0; }
  const TensorInfo& info(const std::string& name) const;
  at::Tensor get(const std::string& name) const;

 private:
  std::string dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const SafetensorsFile*> where_;
};

// Bytes per element of a safetensors dtype string; 0 for an unknown dtype.
size_t safetensors_dtype_size(const std::string& dtype);

}  // namespace mtad
