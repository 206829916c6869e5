// Shared argument checks and the CPU / CUDA split used by every op's entry point.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#ifdef MTAD_WITH_CUDA
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "ops/detail/common.h"  // cuda::DType
#endif

namespace mtad::ops {

inline void check_float(const at::Tensor& t, const char* op, const char* arg) {
  TORCH_CHECK(t.defined(), op, ": ", arg, " is undefined");
  const auto st = t.scalar_type();
  TORCH_CHECK(st == at::kFloat || st == at::kHalf || st == at::kBFloat16, op, ": ", arg,
              " must be float32, float16 or bfloat16, got ", st);
}

inline void check_like(const at::Tensor& t, const at::Tensor& ref, const char* op, const char* arg) {
  TORCH_CHECK(t.device() == ref.device(), op, ": ", arg, " is on ", t.device(), " but the input is on ",
              ref.device());
  TORCH_CHECK(t.scalar_type() == ref.scalar_type(), op, ": ", arg, " has dtype ", t.scalar_type(),
              " but the input has ", ref.scalar_type());
  TORCH_CHECK(t.is_contiguous(), op, ": ", arg, " must be contiguous");
}

// An int64 [n] index tensor (a tree's parents or tokens) on the device of `ref`, the
// tensor named `ref_name`.
inline void check_index_vector(const at::Tensor& t, const at::Tensor& ref, const char* op, const char* arg, int64_t n,
                               const char* ref_name) {
  TORCH_CHECK(t.defined(), op, ": ", arg, " is undefined");
  TORCH_CHECK(t.scalar_type() == at::kLong, op, ": ", arg, " must be int64, got ", t.scalar_type());
  TORCH_CHECK(t.dim() == 1 && t.size(0) == n, op, ": ", arg, " must be [", n, "], got shape ", t.sizes());
  TORCH_CHECK(t.device() == ref.device(), op, ": ", arg, " is on ", t.device(), " but ", ref_name, " are on ",
              ref.device());
}

// The CPU kernels compute in float32; other dtypes on the CPU go through ATen's float path.
inline bool cpu_f32(const at::Tensor& t) { return t.device().is_cpu() && t.scalar_type() == at::kFloat; }

[[noreturn]] inline void no_kernel(const char* op, const at::Tensor& t) {
  TORCH_CHECK(false, op, ": no kernel for ", t.device(), " / ", t.scalar_type(),
#ifdef MTAD_WITH_CUDA
              ""
#else
              " (this build of mtad has no CUDA kernels)"
#endif
  );
}

#ifdef MTAD_WITH_CUDA
inline cuda::DType cuda_dtype(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat: return cuda::DType::F32;
    case at::kHalf: return cuda::DType::F16;
    case at::kBFloat16: return cuda::DType::BF16;
    default: TORCH_CHECK(false, "no CUDA kernel for dtype ", t.scalar_type());
  }
}
inline cudaStream_t stream_of(const at::Tensor& t) {
  return c10::cuda::getCurrentCUDAStream(t.device().index()).stream();
}
#endif

}  // namespace mtad::ops
