#include "model/cpu_forward.h"

#include <ATen/Parallel.h>

#include <chrono>
#include <cstdlib>
#include <new>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "ops/cpu/simd.h"
#include "ops/fused.h"
#include "ops/norms.h"
#include "ops/tree_attention.h"

namespace mtad {

void CpuScratch::Free::operator()(void* p) const { std::free(p); }

void* CpuScratch::bytes(Slot s, size_t n) {
  Buffer& b = buffers_[s];
  if (n > b.size) {
    // Grow geometrically, so that a slowly rising T reallocates only a few times.
    const size_t size = std::max(n, b.size + b.size / 2);
    constexpr size_t kAlign = 64;
    void* p = std::aligned_alloc(kAlign, (size + kAlign - 1) / kAlign * kAlign);
    if (!p) throw std::bad_alloc();
    b.data.reset(p);
    b.size = size;
  }
  return b.data.get();
}

CpuScratchPool::Lease CpuScratchPool::acquire() {
  std::unique_ptr<CpuScratch> s;
  {
    const std::lock_guard<std::mutex> lock(mutex_);
    if (!free_.empty()) {
      s = std::move(free_.back());
      free_.pop_back();
    }
  }
  if (!s) s = std::make_unique<CpuScratch>();
  return Lease(*this, std::move(s));
}

void CpuScratchPool::give_back(std::unique_ptr<CpuScratch> s) {
  if (!s) return;
  const std::lock_guard<std::mutex> lock(mutex_);
  free_.push_back(std::move(s));
}

void CpuNorm::apply(const float* x, float* y, int64_t T, int64_t H) const {
  if (kind == kRms)
    ops::cpu::rms_norm_f32(x, w, y, T, H, eps);
  else
    ops::cpu::layer_norm_f32(x, w, b, y, T, H, eps);
}

void ThreadGovernor::report(double wait_s, int nth, double wall_s) {
  if (wait_s > kWaitShare * nth * wall_s) {
    if (strikes_.fetch_add(1, std::memory_order_relaxed) + 1 >= kStrikes) {
      strikes_.store(0, std::memory_order_relaxed);
      solo_left_.store(kSoloForwards, std::memory_order_relaxed);
    }
  } else {
    strikes_.store(0, std::memory_order_relaxed);
  }
}

int stack_threads(const CpuStack& s, int64_t T) {
#ifdef _OPENMP
  if (omp_in_parallel()) return 1;  // called from a parallel region of someone else's
  const int n = at::get_num_threads();
  // The smallest phase (the output projection) must be worth splitting.
  const int64_t work = T * s.hidden * s.heads * s.head_dim;
  const int64_t min_work = ops::cpu::min_parallel_work().load(std::memory_order_relaxed);
  if (n <= 1 || work < min_work) return 1;
  // min_work 0: a test splits every loop on purpose, whatever the waits.
  return min_work == 0 || s.governor->may_split() ? n : 1;
#else
  return 1;
#endif
}

namespace {

// One thread's share of the stack; tid of nth threads. Every thread runs every phase,
// each on its own part of the output; sync() is the barrier between phases.
template <class Sync>
void run_blocks(const CpuStack& s, const CpuStep& st, float* h, float* q, float* a, float* g, float* scores, int tid,
                int nth, Sync&& sync) {
  using namespace ops::cpu;
  const int64_t T = st.T, H = s.hidden, D = s.head_dim, QD = s.heads * D, KD = s.kv_heads * D, F = s.ffn;
  const int64_t n_layers = static_cast<int64_t>(s.blocks.size());
  // Output columns per share boundary: whole cache lines and whole panels.
  const int64_t kAlign = std::max<int64_t>(16, ops::cpu::panel_rows());
  int64_t b = 0, e = 0;
  auto part = [&](int64_t n, int64_t align) { split_range(n, tid, nth, align, b, e); };
  float* x = st.x;
  const float* cs = s.rope ? st.rope_cos : nullptr;
  const float* sn = s.rope ? st.rope_sin : nullptr;
  for (int64_t l = 0; l < n_layers; ++l) {
    const CpuBlock& B = s.blocks[l];
    float* kc = st.k_cache + l * st.capacity * KD;
    float* vc = st.v_cache + l * st.capacity * KD;

    // Attention input; `base` is what the output projection adds to.
    const float* in = x;
    const float* base = x;
    if (!s.post_norm) {
      B.attn_norm.apply(x, h, T, H);
      in = h;
    } else if (l > 0) {  // the previous block's post-MLP norm, not yet applied to x
      s.blocks[l - 1].mlp_norm.apply(x, h, T, H);
      in = base = h;
    }
    // q, k, v in one phase; k and v straight into the cache's new rows, RoPE applied.
    part(proj_units(B.q, s.rope), kAlign);
    proj_rows(in, T, B.q, D, cs, sn, q, QD, b, e);
    part(proj_units(B.k, s.rope), kAlign);
    proj_rows(in, T, B.k, D, cs, sn, kc + st.start * KD, KD, b, e);
    part(proj_units(B.v, false), kAlign);
    proj_rows(in, T, B.v, D, nullptr, nullptr, vc + st.start * KD, KD, b, e);
    sync();

    part(T * s.heads, 1);
    tree_attention_tasks_f32(q, kc, vc, st.mask ? &st.mask_rows : nullptr, a, s.heads, s.kv_heads, D, st.prefix,
                             st.scale, b, e, scores);
    sync();

    part(H, kAlign);
    matvec_rows(a, T, B.o, Epilogue::kAdd, x, H, base, H, b, e);
    sync();

    // MLP input; post-norm: attention's residual add is normalised first.
    base = x;
    if (!s.post_norm) {
      B.mlp_norm.apply(x, h, T, H);
    } else {
      B.attn_norm.apply(x, h, T, H);
      base = h;
    }
    part(F, kAlign);
    if (B.gate.w)
      gate_up_rows(h, T, B.gate, B.up, g, b, e);
    else
      matvec_rows(h, T, B.up, Epilogue::kRelu, g, F, nullptr, 0, b, e);
    sync();

    part(H, kAlign);
    matvec_rows(g, T, B.down, Epilogue::kAdd, x, H, base, H, b, e);
    if (l + 1 < n_layers || s.post_norm) sync();  // the region's end is a barrier too
  }
  if (s.post_norm && n_layers > 0) {
    part(T, 1);  // rows are independent: each thread normalises its own in place
    s.blocks[n_layers - 1].mlp_norm.apply(x + b * H, x + b * H, e - b, H);
  }
}

}  // namespace

void run_stack_cpu(const CpuStack& s, const CpuStep& st, CpuScratch& sc) {
  const int64_t T = st.T, H = s.hidden, QD = s.heads * s.head_dim;
  const int64_t scores_each = ops::cpu::scores_floats(st.prefix + st.M, s.heads, s.kv_heads);
  const int nt = stack_threads(s, T);
  float* h = sc.floats(CpuScratch::kNorm, nt * T * H);
  float* q = sc.floats(CpuScratch::kQuery, T * QD);
  float* a = sc.floats(CpuScratch::kAttention, T * QD);
  float* g = sc.floats(CpuScratch::kMlp, T * s.ffn);
  float* scores = sc.floats(CpuScratch::kScores, nt * scores_each);
  if (nt == 1) {
    run_blocks(s, st, h, q, a, g, scores, 0, 1, [] {});
    return;
  }
#ifdef _OPENMP
  using Clock = std::chrono::steady_clock;
  const Clock::time_point start = Clock::now();
  std::atomic<int64_t> wait_ns{0};
  int team = nt;
#pragma omp parallel num_threads(nt)
  {
    // The team may be smaller than asked for; shares follow the team actually started.
    const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
    if (tid == 0) team = nth;
    int64_t waited = 0;
    run_blocks(s, st, h + tid * T * H, q, a, g, scores + tid * scores_each, tid, nth, [nth, &waited] {
      if (nth > 1) {
        const Clock::time_point t0 = Clock::now();
#pragma omp barrier
        waited += std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
      }
    });
    wait_ns.fetch_add(waited, std::memory_order_relaxed);
  }
  if (team > 1)
    s.governor->report(wait_ns.load() * 1e-9, team,
                       std::chrono::duration<double>(Clock::now() - start).count());
#endif
}

}  // namespace mtad
