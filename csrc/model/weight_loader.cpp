#include "model/weight_loader.h"

#include <ATen/ATen.h>

#include <sstream>

#include "mtad/errors.h"

namespace mtad {
namespace {

std::string shape_str(c10::IntArrayRef s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

}  // namespace

WeightLoader::WeightLoader(const WeightFolder& folder, at::Device device, at::ScalarType dtype,
                           at::ScalarType matrix_dtype, bool mmap)
    : folder_(folder), device_(device), dtype_(dtype), matrix_dtype_(matrix_dtype) {
  if (!device.is_cpu() || mmap) return;
  size_t total = 0;
  for (const auto& name : folder.names()) {
    const TensorInfo& info = folder.info(name);
    // Matrices in panels are padded to a whole panel.
    const int64_t pad = info.shape.size() == 2 ? ops::cpu::panel_rows() * info.shape[1] : 0;
    total += static_cast<size_t>(c10::multiply_integers(info.shape) + pad) * c10::elementSize(at::kFloat) + 64;
  }
  arena_ = std::make_unique<WeightArena>(total);
}

at::Tensor WeightLoader::take_as(const std::string& name, const std::vector<int64_t>& shape, at::ScalarType dtype) {
  at::Tensor src = checked(name, shape);
  if (arena_) {
    at::Tensor dst = arena_->alloc(src.sizes(), dtype);
    dst.copy_(src);
    return dst;
  }
  // .to() returns the mapped tensor itself when dtype and device already match: no copy.
  return src.to(device_, dtype).contiguous();
}

at::Tensor WeightLoader::checked(const std::string& name, const std::vector<int64_t>& shape) {
  const TensorInfo& info = folder_.info(name);  // throws "missing tensor"
  if (info.dtype != "F32" && info.dtype != "F16" && info.dtype != "BF16")
    throw WeightError(folder_.dir() + ": tensor '" + name + "' has dtype " + info.dtype +
                      "; mtad loads F32, F16 and BF16 weights");
  if (info.shape != shape)
    throw WeightError(folder_.dir() + ": tensor '" + name + "' has shape " + shape_str(info.shape) +
                      " but the config implies " + shape_str(shape));
  used_.insert(name);
  return folder_.get(name);
}

at::Tensor WeightLoader::take_matrix(const std::string& name, const std::vector<int64_t>& shape,
                                     ops::cpu::Packing packing) {
  if (!arena_) return take_as(name, shape, matrix_dtype_);
  const at::Tensor rows = checked(name, shape).to(matrix_dtype_).contiguous();
  at::Tensor dst = arena_->alloc({ops::cpu::panel_count(shape[0], packing.layout), shape[1], ops::cpu::panel_rows()}, matrix_dtype_);
  ops::cpu::pack_panels(rows, packing, dst);
  return dst;
}

at::Tensor WeightLoader::take_optional(const std::string& name, const std::vector<int64_t>& shape) {
  return has(name) ? take(name, shape) : at::Tensor();
}

void WeightLoader::finish() const {
  std::vector<std::string> extra;
  for (const auto& n : folder_.names())
    if (!used_.count(n)) extra.push_back(n);
  if (extra.empty()) return;
  std::string list;
  for (size_t i = 0; i < extra.size() && i < 5; ++i) list += (i ? ", '" : "'") + extra[i] + "'";
  if (extra.size() > 5) list += " and " + std::to_string(extra.size() - 5) + " more";
  throw WeightError(folder_.dir() + ": unexpected tensor(s) the config does not account for: " + list);
}

}  // namespace mtad
