// C entry points over the CUDA launchers of csrc/ops/cuda, for ctypes (tests/cuda_emu/emu.py):
// the emulated kernels run on host pointers (CPU tensors' data). Each returns 0, or 1 with
// the error (a KernelError from the emulation or a launcher's own check) in emu_last_error().
// The launchers are declared here rather than included, so that this file depends on their
// signatures only, not on which header declares them.
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>

#include "cuda_emu/emu.h"
#include "cuda_emu/runtime.h"

namespace mtad::cuda {

enum class DType { F32, F16, BF16 };

void rms_norm(DType dt, const void* x, const void* w, void* y, int64_t rows, int64_t dim, float eps,
              cudaStream_t stream);
void layer_norm(DType dt, const void* x, const void* w, const void* b, void* y, int64_t rows, int64_t dim,
                float eps, cudaStream_t stream);
void rope(DType dt, void* x, const int64_t* positions, const float* inv_freq, int64_t T, int64_t heads, int64_t D,
          cudaStream_t stream);
void tree_attention(DType dt, const void* q, const void* k, const void* v, const bool* mask, void* out, int64_t T,
                    int64_t M, int64_t H, int64_t KVH, int64_t D, int64_t prefix, float scale, cudaStream_t stream);
void silu_mul(DType dt, const void* gate, const void* up, void* out, int64_t n, cudaStream_t stream);
void relu(DType dt, void* x, int64_t n, cudaStream_t stream);
void normalize(const float* logits, float* out, int64_t R, int64_t V, float temperature, int64_t top_k, float top_p,
               cudaStream_t stream);
void sample(const float* logprobs, int64_t* out, int64_t R, int64_t V, uint64_t seed, uint64_t offset,
            cudaStream_t stream);
void kv_compact(void* k, void* v, int64_t L, int64_t C, int64_t row_bytes, int64_t prefix, const int64_t* slots,
                int64_t A, cudaStream_t stream);
void verify_tree(const float* logp, int64_t V, const int64_t* parents, const int64_t* tokens, int64_t N,
                 const float* best_lq, int64_t G, float log_tau, float* node_lp, int64_t* info, cudaStream_t stream);
void sps_accept(const float* tlp, const float* dlp, const int64_t* tokens, int64_t G, int64_t V, uint64_t seed,
                uint64_t offset, int64_t* out, cudaStream_t stream);
void sample_repeat(const float* logprobs, int64_t* out, int64_t draws, int64_t V, uint64_t seed, uint64_t offset,
                   cudaStream_t stream);
void beam_keys(const float* lp, const float* scores, int64_t* keys, int64_t rows, int64_t V, bool gumbel,
               uint64_t seed, uint64_t offset, cudaStream_t stream);
void beam_joint(const float* lp, const float* scores, float* joint, int64_t rows, int64_t V, cudaStream_t stream);
void beam_finish(const int64_t* chosen, bool from_keys, int64_t M, const float* lp, const float* scores, int64_t V,
                 int64_t N, int64_t* work_flat, float* work_joint, int64_t* parent, int64_t* token,
                 float* token_logprob, float* score, cudaStream_t stream);
void tree_accept(const int64_t* best, const int64_t* parents, const int64_t* tokens, int64_t N, int64_t V,
                 int64_t* info, cudaStream_t stream);
void tree_sample(const float* logp, int64_t V, const int64_t* parents, const int64_t* tokens, int64_t N,
                 uint64_t seed, uint64_t offset, int64_t* info, cudaStream_t stream);

}  // namespace mtad::cuda

namespace {

std::string g_error;

template <class F>
int guarded(F&& f) {
  try {
    f();
    return 0;
  } catch (const std::exception& e) {
    g_error = e.what();
  } catch (...) {
    g_error = "unknown exception";
  }
  return 1;
}

mtad::cuda::DType dtype(int d) { return static_cast<mtad::cuda::DType>(d); }

}  // namespace

namespace mc = mtad::cuda;

extern "C" {

const char* emu_last_error() { return g_error.c_str(); }

void emu_set_order(int order, uint64_t seed) { cuda_emu::set_order(static_cast<cuda_emu::Order>(order), seed); }
int emu_order() { return static_cast<int>(cuda_emu::order()); }
uint64_t emu_set_static_smem_limit(uint64_t bytes) { return cuda_emu::set_static_smem_limit(bytes); }

// launches, blocks, threads, switches, warp collectives
void emu_stats(uint64_t* out) {
  const cuda_emu::Stats s = cuda_emu::stats();
  out[0] = s.launches;
  out[1] = s.blocks;
  out[2] = s.threads;
  out[3] = s.switches;
  out[4] = s.warp_collectives;
}

int emu_rms_norm(int dt, const void* x, const void* w, void* y, int64_t rows, int64_t dim, float eps) {
  return guarded([&] { mc::rms_norm(dtype(dt), x, w, y, rows, dim, eps, nullptr); });
}
int emu_layer_norm(int dt, const void* x, const void* w, const void* b, void* y, int64_t rows, int64_t dim,
                   float eps) {
  return guarded([&] { mc::layer_norm(dtype(dt), x, w, b, y, rows, dim, eps, nullptr); });
}
int emu_rope(int dt, void* x, const int64_t* positions, const float* inv_freq, int64_t T, int64_t heads, int64_t D) {
  return guarded([&] { mc::rope(dtype(dt), x, positions, inv_freq, T, heads, D, nullptr); });
}
int emu_tree_attention(int dt, const void* q, const void* k, const void* v, const bool* mask, void* out, int64_t T,
                       int64_t M, int64_t H, int64_t KVH, int64_t D, int64_t prefix, float scale) {
  return guarded([&] { mc::tree_attention(dtype(dt), q, k, v, mask, out, T, M, H, KVH, D, prefix, scale, nullptr); });
}
int emu_silu_mul(int dt, const void* gate, const void* up, void* out, int64_t n) {
  return guarded([&] { mc::silu_mul(dtype(dt), gate, up, out, n, nullptr); });
}
int emu_relu(int dt, void* x, int64_t n) {
  return guarded([&] { mc::relu(dtype(dt), x, n, nullptr); });
}
int emu_normalize(const float* logits, float* out, int64_t R, int64_t V, float temperature, int64_t top_k,
                  float top_p) {
  return guarded([&] { mc::normalize(logits, out, R, V, temperature, top_k, top_p, nullptr); });
}
int emu_sample(const float* logprobs, int64_t* out, int64_t R, int64_t V, uint64_t seed, uint64_t offset) {
  return guarded([&] { mc::sample(logprobs, out, R, V, seed, offset, nullptr); });
}
int emu_sample_repeat(const float* logprobs, int64_t* out, int64_t draws, int64_t V, uint64_t seed, uint64_t offset) {
  return guarded([&] { mc::sample_repeat(logprobs, out, draws, V, seed, offset, nullptr); });
}
int emu_kv_compact(void* k, void* v, int64_t L, int64_t C, int64_t row_bytes, int64_t prefix, const int64_t* slots,
                   int64_t A) {
  return guarded([&] { mc::kv_compact(k, v, L, C, row_bytes, prefix, slots, A, nullptr); });
}
int emu_verify_tree(const float* logp, int64_t V, const int64_t* parents, const int64_t* tokens, int64_t N,
                    const float* best_lq, int64_t G, float log_tau, float* node_lp, int64_t* info) {
  return guarded([&] { mc::verify_tree(logp, V, parents, tokens, N, best_lq, G, log_tau, node_lp, info, nullptr); });
}
int emu_sps_accept(const float* tlp, const float* dlp, const int64_t* tokens, int64_t G, int64_t V, uint64_t seed,
                   uint64_t offset, int64_t* out) {
  return guarded([&] { mc::sps_accept(tlp, dlp, tokens, G, V, seed, offset, out, nullptr); });
}
int emu_beam_keys(const float* lp, const float* scores, int64_t* keys, int64_t rows, int64_t V, int gumbel,
                  uint64_t seed, uint64_t offset) {
  return guarded([&] { mc::beam_keys(lp, scores, keys, rows, V, gumbel != 0, seed, offset, nullptr); });
}
int emu_beam_joint(const float* lp, const float* scores, float* joint, int64_t rows, int64_t V) {
  return guarded([&] { mc::beam_joint(lp, scores, joint, rows, V, nullptr); });
}
int emu_beam_finish(const int64_t* chosen, int from_keys, int64_t M, const float* lp, const float* scores, int64_t V,
                    int64_t N, int64_t* work_flat, float* work_joint, int64_t* parent, int64_t* token,
                    float* token_logprob, float* score) {
  return guarded([&] {
    mc::beam_finish(chosen, from_keys != 0, M, lp, scores, V, N, work_flat, work_joint, parent, token, token_logprob,
                    score, nullptr);
  });
}
int emu_tree_accept(const int64_t* best, const int64_t* parents, const int64_t* tokens, int64_t N, int64_t V,
                    int64_t* info) {
  return guarded([&] { mc::tree_accept(best, parents, tokens, N, V, info, nullptr); });
}
int emu_tree_sample(const float* logp, int64_t V, const int64_t* parents, const int64_t* tokens, int64_t N,
                    uint64_t seed, uint64_t offset, int64_t* info) {
  return guarded([&] { mc::tree_sample(logp, V, parents, tokens, N, seed, offset, info, nullptr); });
}

}  // extern "C"
