// The CPU forward of a decoder stack (Llama and OPT blocks) in one OpenMP parallel
// region per forward, on raw pointers into the weights, the KV cache and per-model
// scratch buffers: no ATen call, no allocation, and per layer five barriers, one after
// each step that needs the whole result of the one before (q/k/v -> attention -> output
// projection -> MLP input projections -> MLP output projection). Each thread computes
// the norms itself (they are cheap) rather than waiting for one thread to.
#pragma once

#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "mtad/kv_cache.h"
#include "ops/linear.h"
#include "ops/tree_attention.h"

namespace mtad {

// Reusable CPU buffers of one forward, grown on demand (to the largest T, cache length
// and thread count seen) and never shrunk. Contents are scratch between forwards.
class CpuScratch {
 public:
  enum Slot {
    kResidual,   // x [T, hidden]
    kEmbed,      // OPT: embeddings before project_in [T, word_embed_proj_dim]
    kHidden,     // final hidden states [T, out_dim]
    kProjected,  // OPT: after project_out [T, word_embed_proj_dim]
    kRows,       // the hidden rows logits are asked for [R, out_dim]
    kNorm,       // per thread: norm output [T, hidden]
    kQuery,      // q [T, heads * head_dim]
    kAttention,  // attention output [T, heads * head_dim]
    kMlp,        // MLP hidden [T, ffn]
    kScores,     // per thread: attention scores [cache length x heads per kv group]
    kRopeCos,    // [T, head_dim / 2]
    kRopeSin,
    kPositions,  // int64 [T] when the caller gave none
    kSlots
  };
  // At least n elements, 64-byte aligned.
  float* floats(Slot s, int64_t n) { return static_cast<float*>(bytes(s, n * sizeof(float))); }
  int64_t* ints(Slot s, int64_t n) { return static_cast<int64_t*>(bytes(s, n * sizeof(int64_t))); }

 private:
  struct Free {
    void operator()(void* p) const;
  };
  struct Buffer {
    std::unique_ptr<void, Free> data;
    size_t size = 0;
  };
  void* bytes(Slot s, size_t n);
  std::array<Buffer, kSlots> buffers_;
};

// Scratch for concurrent forwards of one model (the Python binding releases the GIL): a
// forward leases one set, and gives it back when the lease ends.
class CpuScratchPool {
 public:
  class Lease {
   public:
    Lease(CpuScratchPool& pool, std::unique_ptr<CpuScratch> s) : pool_(pool), s_(std::move(s)) {}
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() { pool_.give_back(std::move(s_)); }
    CpuScratch& operator*() const { return *s_; }

   private:
    CpuScratchPool& pool_;
    std::unique_ptr<CpuScratch> s_;
  };
  Lease acquire();

 private:
  void give_back(std::unique_ptr<CpuScratch> s);
  std::mutex mutex_;
  std::vector<std::unique_ptr<CpuScratch>> free_;
};

// RMSNorm (Llama) or LayerNorm (OPT; w and b may be null) over rows of H.
struct CpuNorm {
  enum Kind : uint8_t { kRms, kLayer };
  Kind kind = kRms;
  const float* w = nullptr;
  const float* b = nullptr;
  float eps = 0.f;
  void apply(const float* x, float* y, int64_t T, int64_t H) const;
};

struct CpuBlock {
  // Pre-norm: applied to the inputs of attention and MLP. Post-norm: applied to the
  // residual stream after attention's and after the MLP's residual add.
  CpuNorm attn_norm, mlp_norm;
  ops::cpu::Mat q, k, v, o;
  ops::cpu::Mat gate;  // SwiGLU's gate projection; w == nullptr: a ReLU MLP
  ops::cpu::Mat up;    // SwiGLU's up projection, or fc1 of a ReLU MLP
  ops::cpu::Mat down;  // the MLP's output projection
};

// Decides whether a forward may use all threads. A parallel forward waits at barriers;
// on a machine whose cores are busy with other work a descheduled thread makes the others
// wait a time slice at each (forwards 2-10x slower). When barrier waits take most of a
// parallel forward twice in a row, forwards run on one thread for a while, then try again.
class ThreadGovernor {
 public:
  bool may_split() {
    int64_t left = solo_left_.load(std::memory_order_relaxed);
    while (left > 0 && !solo_left_.compare_exchange_weak(left, left - 1, std::memory_order_relaxed)) {
    }
    return left <= 0;
  }
  // After a parallel forward: seconds all threads spent waiting at barriers, of nth threads
  // over wall seconds.
  void report(double wait_s, int nth, double wall_s);
  static constexpr double kWaitShare = 0.5;  // of the threads' time: waiting dominates
  static constexpr int64_t kStrikes = 2, kSoloForwards = 64;

 private:
  std::atomic<int64_t> solo_left_{0}, strikes_{0};
};

struct CpuStack {
  int64_t hidden = 0, heads = 0, kv_heads = 0, head_dim = 0, ffn = 0;
  bool rope = false;       // RoPE on q and k (tables in CpuStep)
  bool post_norm = false;  // x = norm(x + f(x)) (OPT-350m) instead of x = x + f(norm(x))
  std::vector<CpuBlock> blocks;
  std::shared_ptr<ThreadGovernor> governor = std::make_shared<ThreadGovernor>();
};

struct CpuStep {
  int64_t T = 0;
  float* x = nullptr;  // the residual stream [T, hidden], updated in place
  // The cache [layers, capacity, kv_heads, head_dim]; the new rows go to [start, start + T).
  float* k_cache = nullptr;
  float* v_cache = nullptr;
  int64_t capacity = 0, start = 0;
  // Attention: every slot before `prefix` is seen; mask [T, M] rules the M slots after
  // it (null: causal, M = T); see ops/tree_attention.h.
  int64_t prefix = 0, M = 0;
  const bool* mask = nullptr;
  ops::cpu::MaskRows mask_rows;  // of mask, when there is one
  float scale = 1.f;
  const float* rope_cos = nullptr;  // [T, head_dim / 2] when the stack uses RoPE
  const float* rope_sin = nullptr;
};

// The step every model runs over T new tokens in x: their cache rows start at the cache's
// length; the slots before `prefix` are seen by every new token, the mask [T, M] rules the rest.
inline CpuStep cpu_step(KVCache& cache, float* x, int64_t T, int64_t M, const bool* mask, int64_t head_dim) {
  CpuStep st;
  st.T = T;
  st.x = x;
  st.k_cache = cache.k.data_ptr<float>();
  st.v_cache = cache.v.data_ptr<float>();
  st.capacity = cache.capacity();
  st.start = cache.length;
  st.M = M;
  st.prefix = cache.length + T - M;
  st.mask = mask;
  if (mask) st.mask_rows = ops::cpu::mask_rows(mask, T, M);
  st.scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
  return st;
}

// Runs every block of `stack` on step.x (post-norm: the last block's mlp_norm included).
void run_stack_cpu(const CpuStack& stack, const CpuStep& step, CpuScratch& scratch);

// Threads run_stack_cpu uses for T tokens (1 when the work is too small to split).
int stack_threads(const CpuStack& stack, int64_t T);

}  // namespace mtad
