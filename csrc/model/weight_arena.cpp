#include "model/weight_arena.h"

#include <ATen/ATen.h>
#include <sys/mman.h>

#include <cstring>

#include "mtad/errors.h"

namespace mtad {

namespace {
constexpr size_t kHugePage = 2u << 20;
constexpr size_t kAlign = 64;
}  // namespace

struct WeightArena::Block {
  void* addr = MAP_FAILED;
  size_t size = 0;
  ~Block() {
    if (addr != MAP_FAILED) munmap(addr, size);
  }
};

WeightArena::WeightArena(size_t capacity) : block_(std::make_shared<Block>()) {
  // Over-allocate by one huge page so the arena can start on a 2 MB boundary; pages
  // that are never touched are never committed.
  block_->size = (capacity + 2 * kHugePage - 1) / kHugePage * kHugePage;
  block_->addr = mmap(nullptr, block_->size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (block_->addr == MAP_FAILED) throw Error(std::string("cannot reserve weight memory: ") + std::strerror(errno));
  madvise(block_->addr, block_->size, MADV_HUGEPAGE);  // advisory: fine if refused
  const auto base = reinterpret_cast<uintptr_t>(block_->addr);
  used_ = ((base + kHugePage - 1) / kHugePage * kHugePage) - base;
}

at::Tensor WeightArena::alloc(c10::IntArrayRef shape, at::ScalarType dtype) {
  const size_t bytes = static_cast<size_t>(c10::multiply_integers(shape)) * c10::elementSize(dtype);
  used_ = (used_ + kAlign - 1) / kAlign * kAlign;
  if (used_ + bytes > block_->size) throw Error("weight arena overflow (internal error)");
  void* ptr = static_cast<char*>(block_->addr) + used_;
  used_ += bytes;
  std::shared_ptr<Block> keep = block_;
  return at::from_blob(ptr, shape, [keep](void*) mutable { keep.reset(); },
                       at::TensorOptions().dtype(dtype).device(at::kCPU));
}

}  // namespace mtad
