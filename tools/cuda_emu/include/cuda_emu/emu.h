// CUDA emulation for the host compiler: what mtad's .cu files use from the CUDA toolkit,
// implemented on the CPU so that the unmodified kernels run (and are checked) without a GPU.
// Threads of a block are cooperatively scheduled fibers (runtime.cpp): __syncthreads and the
// warp collectives are real rendezvous, and misuse of them is reported with the source line.
// preprocess.py rewrites what plain C++ cannot express (kernel<<<...>>>, __shared__,
// __launch_bounds__) into calls into this header.
#pragma once

#include <math.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

// ---- keywords ---------------------------------------------------------------------------

#define __global__
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __align__(n) alignas(n)
// preprocess.py moves __launch_bounds__ into the kernel body (a checked call); in a file it
// did not rewrite the attribute is dropped.
#define __launch_bounds__(...)
// Left over only where preprocess.py did not see the declaration: refuse to compile rather
// than silently give each thread its own copy.
#define __shared__ _Pragma("GCC error \"cuda_emu: __shared__ outside a file rewritten by preprocess.py\"")

// ---- types ------------------------------------------------------------------------------

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}  // NOLINT: implicit as in CUDA
};
struct alignas(8) uint2 {
  unsigned x, y;
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
struct alignas(8) int2 {
  int x, y;
};
struct alignas(16) int4 {
  int x, y, z, w;
};
struct alignas(8) float2 {
  float x, y;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }

// ---- runtime API (host memory stands in for device memory) -------------------------------

enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorMemoryAllocation = 2,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorLaunchFailure = 719,
};
using cudaError = cudaError_t;
struct CUstream_st;
using cudaStream_t = CUstream_st*;
struct CUevent_st;
using cudaEvent_t = CUevent_st*;
enum cudaMemcpyKind {
  cudaMemcpyHostToHost = 0,
  cudaMemcpyHostToDevice = 1,
  cudaMemcpyDeviceToHost = 2,
  cudaMemcpyDeviceToDevice = 3,
  cudaMemcpyDefault = 4,
};
enum cudaFuncAttribute {
  cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
  cudaFuncAttributePreferredSharedMemoryCarveout = 9,
};

cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();
const char* cudaGetErrorString(cudaError_t err);
const char* cudaGetErrorName(cudaError_t err);
cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind kind, cudaStream_t s = nullptr);
cudaError_t cudaMemset(void* dst, int value, size_t n);
cudaError_t cudaMemsetAsync(void* dst, int value, size_t n, cudaStream_t s = nullptr);
cudaError_t cudaMalloc(void** p, size_t n);
cudaError_t cudaFree(void* p);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaDeviceSynchronize();

namespace cuda_emu {
// cudaFuncSetAttribute keyed by the kernel's address.
cudaError_t set_func_attribute(const void* func, cudaFuncAttribute attr, int value);
}  // namespace cuda_emu
template <class F>
cudaError_t cudaFuncSetAttribute(F* func, cudaFuncAttribute attr, int value) {
  return cuda_emu::set_func_attribute(reinterpret_cast<const void*>(func), attr, value);
}

// ---- the emulated thread ------------------------------------------------------------------

namespace cuda_emu {

// The running fiber's indices; runtime.cpp points `cur` at the thread being run.
struct ThreadState {
  uint3 thread_idx;
  unsigned lane, warp, linear;
};
struct BlockState {
  uint3 block_idx;
  dim3 block_dim, grid_dim;
};
extern ThreadState* cur;
extern BlockState block;

// Collectives and checks (runtime.cpp). file/line name the call site in error messages.
void syncthreads(const char* file, int line);
int syncthreads_count(const char* file, int line, int pred);
enum class WarpOp { ShflIdx, ShflUp, ShflDown, ShflXor, Ballot, Any, All, SyncWarp, MatchAny };
uint64_t warp_collective(WarpOp op, const char* file, int line, unsigned mask, uint64_t value, int arg, int width);
[[noreturn]] void kernel_error(const char* file, int line, const char* what);
void launch_bounds(const char* file, int line, long long max_threads, long long min_blocks = 0);
void* shared_alloc(const void* tag, size_t size, size_t align, const char* file, int line, const char* name);
void* dynamic_shared(const char* file, int line);

template <class T>
T& shared_var(const void* tag, const char* file, int line, const char* name) {
  return *static_cast<T*>(shared_alloc(tag, sizeof(T), alignof(T), file, line, name));
}
template <class T>
T* dynamic_shared_as(const char* file, int line) {
  return static_cast<T*>(dynamic_shared(file, line));
}

template <class T>
uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "warp shuffles move at most 8 bytes");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof v);
  return b;
}
template <class T>
T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}
template <class T>
T shfl(WarpOp op, const char* file, int line, unsigned mask, T v, int arg, int width = 32) {
  return from_bits<T>(warp_collective(op, file, line, mask, to_bits(v), arg, width));
}

}  // namespace cuda_emu

#define threadIdx (::cuda_emu::cur->thread_idx)
#define blockIdx (::cuda_emu::block.block_idx)
#define blockDim (::cuda_emu::block.block_dim)
#define gridDim (::cuda_emu::block.grid_dim)
constexpr int warpSize = 32;

#define __syncthreads() ::cuda_emu::syncthreads(__FILE__, __LINE__)
#define __syncthreads_count(p) ::cuda_emu::syncthreads_count(__FILE__, __LINE__, (p))
#define __syncthreads_or(p) (::cuda_emu::syncthreads_count(__FILE__, __LINE__, (p)) != 0)
#define __syncthreads_and(p) \
  (::cuda_emu::syncthreads_count(__FILE__, __LINE__, (p)) == static_cast<int>(blockDim.x * blockDim.y * blockDim.z))
#define __syncwarp(...) \
  ((void)::cuda_emu::warp_collective(::cuda_emu::WarpOp::SyncWarp, __FILE__, __LINE__, (__VA_ARGS__ + 0u) ? (__VA_ARGS__ + 0u) : 0xffffffffu, 0, 0, 32))
#define __shfl_sync(m, v, ...) ::cuda_emu::shfl(::cuda_emu::WarpOp::ShflIdx, __FILE__, __LINE__, (m), (v), __VA_ARGS__)
#define __shfl_up_sync(m, v, ...) ::cuda_emu::shfl(::cuda_emu::WarpOp::ShflUp, __FILE__, __LINE__, (m), (v), __VA_ARGS__)
#define __shfl_down_sync(m, v, ...) \
  ::cuda_emu::shfl(::cuda_emu::WarpOp::ShflDown, __FILE__, __LINE__, (m), (v), __VA_ARGS__)
#define __shfl_xor_sync(m, v, ...) ::cuda_emu::shfl(::cuda_emu::WarpOp::ShflXor, __FILE__, __LINE__, (m), (v), __VA_ARGS__)
#define __ballot_sync(m, p) \
  static_cast<unsigned>(::cuda_emu::warp_collective(::cuda_emu::WarpOp::Ballot, __FILE__, __LINE__, (m), (p) ? 1 : 0, 0, 32))
#define __any_sync(m, p) \
  static_cast<int>(::cuda_emu::warp_collective(::cuda_emu::WarpOp::Any, __FILE__, __LINE__, (m), (p) ? 1 : 0, 0, 32))
#define __all_sync(m, p) \
  static_cast<int>(::cuda_emu::warp_collective(::cuda_emu::WarpOp::All, __FILE__, __LINE__, (m), (p) ? 1 : 0, 0, 32))
#define __match_any_sync(m, v)                                                                                   \
  static_cast<unsigned>(::cuda_emu::warp_collective(::cuda_emu::WarpOp::MatchAny, __FILE__, __LINE__, (m), \
                                                    ::cuda_emu::to_bits(v), 0, 32))
#define __trap() ::cuda_emu::kernel_error(__FILE__, __LINE__, "__trap()")

// ---- atomics: fibers switch only at collectives, so a read-modify-write is atomic ---------

template <class T>
T atomicAdd(T* a, T v) {
  const T old = *a;
  *a = old + v;
  return old;
}
template <class T>
T atomicSub(T* a, T v) {
  const T old = *a;
  *a = old - v;
  return old;
}
template <class T>
T atomicMin(T* a, T v) {
  const T old = *a;
  *a = v < old ? v : old;
  return old;
}
template <class T>
T atomicMax(T* a, T v) {
  const T old = *a;
  *a = v > old ? v : old;
  return old;
}
template <class T>
T atomicExch(T* a, T v) {
  const T old = *a;
  *a = v;
  return old;
}
template <class T>
T atomicCAS(T* a, T expected, T v) {
  const T old = *a;
  if (old == expected) *a = v;
  return old;
}
template <class T>
T atomicAnd(T* a, T v) {
  const T old = *a;
  *a = old & v;
  return old;
}
template <class T>
T atomicOr(T* a, T v) {
  const T old = *a;
  *a = old | v;
  return old;
}
template <class T>
T atomicXor(T* a, T v) {
  const T old = *a;
  *a = old ^ v;
  return old;
}
inline unsigned atomicInc(unsigned* a, unsigned limit) {
  const unsigned old = *a;
  *a = old >= limit ? 0u : old + 1u;
  return old;
}
inline unsigned atomicDec(unsigned* a, unsigned limit) {
  const unsigned old = *a;
  *a = (old == 0u || old > limit) ? limit : old - 1u;
  return old;
}

// ---- integer and float intrinsics -----------------------------------------------------------

inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x)); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x)); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline unsigned __brev(unsigned x) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}
inline unsigned __activemask() { return 0xffffffffu; }
inline unsigned __lanemask_lt() { return (1u << ::cuda_emu::cur->lane) - 1u; }

inline unsigned __float_as_uint(float x) { return cuda_emu::from_bits<unsigned>(cuda_emu::to_bits(x)); }
inline float __uint_as_float(unsigned x) { return cuda_emu::from_bits<float>(cuda_emu::to_bits(x)); }
inline int __float_as_int(float x) { return cuda_emu::from_bits<int>(cuda_emu::to_bits(x)); }
inline float __int_as_float(int x) { return cuda_emu::from_bits<float>(cuda_emu::to_bits(x)); }
inline long long __double_as_longlong(double x) { return cuda_emu::from_bits<long long>(cuda_emu::to_bits(x)); }
inline double __longlong_as_double(long long x) { return cuda_emu::from_bits<double>(cuda_emu::to_bits(x)); }

namespace cuda_emu {
// An empty asm the optimiser cannot see through: the _rn intrinsics round each operation
// on its own, so their results must not be contracted into an FMA (as nvcc guarantees).
inline float opaque(float x) {
  __asm__ volatile("" : "+m"(x));
  return x;
}
inline double opaque(double x) {
  __asm__ volatile("" : "+m"(x));
  return x;
}
}  // namespace cuda_emu
inline float __fmul_rn(float a, float b) { return cuda_emu::opaque(a * b); }
inline float __fadd_rn(float a, float b) { return cuda_emu::opaque(a + b); }
inline float __fsub_rn(float a, float b) { return cuda_emu::opaque(a - b); }
inline float __fdiv_rn(float a, float b) { return cuda_emu::opaque(a / b); }
inline float __fmaf_rn(float a, float b, float c) { return ::fmaf(a, b, c); }
inline float __frcp_rn(float a) { return cuda_emu::opaque(1.f / a); }
inline float __fsqrt_rn(float a) { return ::sqrtf(a); }
inline double __dmul_rn(double a, double b) { return cuda_emu::opaque(a * b); }
inline double __dadd_rn(double a, double b) { return cuda_emu::opaque(a + b); }
// The fast-math intrinsics: the precise functions (a GPU's are less accurate).
inline float __expf(float x) { return ::expf(x); }
inline float __logf(float x) { return ::logf(x); }
inline float __log2f(float x) { return ::log2f(x); }
inline float __sinf(float x) { return ::sinf(x); }
inline float __cosf(float x) { return ::cosf(x); }
inline float __powf(float a, float b) { return ::powf(a, b); }
inline float __fdividef(float a, float b) { return a / b; }
inline void __sincosf(float x, float* s, float* c) { ::sincosf(x, s, c); }
inline float __saturatef(float x) { return x < 0.f ? 0.f : (x > 1.f ? 1.f : x); }
inline float rsqrtf(float x) { return 1.f / ::sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / ::sqrt(x); }
inline float exp10f(float x) { return ::powf(10.f, x); }

// CUDA's min / max overloads for mixed arithmetic types, in the global namespace.
template <class A, class B, std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>, int> = 0>
inline std::common_type_t<A, B> min(A a, B b) {
  using C = std::common_type_t<A, B>;
  return static_cast<C>(b) < static_cast<C>(a) ? static_cast<C>(b) : static_cast<C>(a);
}
template <class A, class B, std::enable_if_t<std::is_arithmetic_v<A> && std::is_arithmetic_v<B>, int> = 0>
inline std::common_type_t<A, B> max(A a, B b) {
  using C = std::common_type_t<A, B>;
  return static_cast<C>(a) < static_cast<C>(b) ? static_cast<C>(b) : static_cast<C>(a);
}

// ---- kernel launch (what preprocess.py turns kernel<<<g, b, smem, s>>>(args) into) ---------

namespace cuda_emu {

struct Site {
  const char* kernel;
  const char* file;
  int line;
};
struct Config {
  dim3 grid, block;
  size_t smem;
};
// Runs every block of the grid; body(ctx) runs one thread. Throws KernelError on misuse.
void run_grid(const Site& site, const void* func, const Config& cfg, void (*body)(void*), void* ctx);

template <class... P>
class Launch {
 public:
  Launch(Site site, void (*kernel)(P...), dim3 grid, dim3 block, size_t smem = 0, cudaStream_t = nullptr)
      : site_(site), kernel_(kernel), cfg_{grid, block, smem} {}
  // Arguments are converted to the kernel's parameter types once, as a launch copies them;
  // each thread then gets its own copy of the parameters.
  template <class... A>
  void operator()(A&&... args) {
    Ctx ctx{kernel_, std::tuple<std::decay_t<P>...>(std::forward<A>(args)...)};
    run_grid(site_, reinterpret_cast<const void*>(kernel_), cfg_, &body, &ctx);
  }

 private:
  struct Ctx {
    void (*kernel)(P...);
    std::tuple<std::decay_t<P>...> params;
  };
  static void body(void* p) {
    Ctx* c = static_cast<Ctx*>(p);
    std::apply(c->kernel, c->params);
  }
  Site site_;
  void (*kernel_)(P...);
  Config cfg_;
};

template <class... P, class... C>
Launch<P...> launch(Site site, void (*kernel)(P...), C&&... config) {
  return Launch<P...>(site, kernel, std::forward<C>(config)...);
}

}  // namespace cuda_emu
