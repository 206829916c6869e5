// What every op's detail header shares. The layout of an op <op> (README, Layout):
//   ops/<op>.h          the ATen-level API (what the decoders and the bindings call);
//                       it includes ops/detail/<op>.h, so C++ that runs a CPU kernel on
//                       raw pointers (model/cpu_forward) needs no other include
//   ops/<op>.cpp        argument checks and the CPU / CUDA dispatch (ops/dispatch.h)
//   ops/detail/<op>.h   plain C++, no ATen: the scalar code the CPU and CUDA kernels
//                       share (MTAD_HD helpers), the cpu:: kernels' declarations and,
//                       in a CUDA build, the cuda:: launchers' raw-pointer declarations
//   ops/cpu/<op>.cpp    the CPU reference kernels; never include ops/cuda/
//   ops/cuda/<op>.cu    the CUDA kernels and launchers; include ops/detail/<op>.h and
//                       ops/cuda/common.cuh (device helpers every kernel shares) only
#pragma once

#include <cstdint>

// Scalar helpers both compilers build: __host__ __device__ under nvcc, plain inline
// functions under the host compiler.
#if defined(__CUDACC__)
#define MTAD_HD __host__ __device__ __forceinline__
#else
#define MTAD_HD inline
#endif

// The cuda:: declarations need only the runtime API's cudaStream_t, so the host code
// of a CUDA build and the .cu files see them, and a CPU build needs no toolkit.
#if defined(__CUDACC__) || defined(MTAD_WITH_CUDA)
#define MTAD_CUDA_DECLS 1
#include <cuda_runtime_api.h>

namespace mtad::cuda {
// Storage type of the tensors a dtype-generic kernel reads and writes.
enum class DType { F32, F16, BF16 };
}  // namespace mtad::cuda
#endif
