// normalize and sample on the GPU (ops/sampling.h), one block per row, the same orders,
// counters and formulas as the CPU reference (ops/cpu/sampling.cpp).
//
// normalize: pass 1 writes the scaled row to `out` (the scratch of the later passes) and
// finds its top rank key. Without top-k / top-p a sum and a write pass finish the row.
// With them the kept tokens are a prefix of the rank-key order, found without sorting the
// row: pass 2 counts the tokens (and their mass) within 1, 2, 4, ..., 32 of the maximum
// and in all; the smallest of these sets that must hold the kept prefix is gathered into
// shared memory (when it fits, kCap) and sorted there, and the prefix is read off it.
// Rows where no such set fits (flat or heavily tied rows) run a radix select over the
// rank keys instead: a few more passes, each counting one 8-bit digit.
// sample: each thread owns a contiguous chunk of ids; a block scan of the chunk sums (in
// double) gives every chunk its running start, and the chunk holding the crossing finds it.
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>

#include "ops/cuda/common.cuh"
#include "ops/detail/sampling.h"
#include "ops/rng.h"

namespace mtad::cuda {
namespace {

using sampling_detail::key_value;
using sampling_detail::rank_index;
using sampling_detail::rank_key;

constexpr int kThreads = 512;
constexpr int kCap = 4096;     // candidates the fast path sorts in shared memory (32 KiB)
constexpr int kBuckets = 7;    // within 2^b of the maximum for b = 0..5, and every finite token
constexpr int kNearBuckets = kBuckets - 1;

struct NormalizeSmem {
  uint64_t keys[kCap];
  unsigned hist_count[256];
  double hist_mass[256];
  uint64_t red_u64[32];
  double red_f64[32];
  int red_i32[32];
  int slot;
  uint64_t sel_prefix;
  double sel_above;
  int sel_done;
};

__device__ __forceinline__ float weight(float v, float m) { return expf(v - m); }

// Compensated float sum: a thread's share of a row summed to about float precision
// however long it is (the CPU sums in double), without the cost of double adds on GPUs
// with few FP64 units.
struct KahanSum {
  float sum = 0.f, carry = 0.f;
  __device__ void add(float v) {
    const float y = v - carry;
    const float t = sum + y;
    carry = (t - sum) - y;
    sum = t;
  }
  __device__ double value() const { return static_cast<double>(sum) - static_cast<double>(carry); }
};
__device__ __forceinline__ int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }

// Writes 0 at `best` and -inf elsewhere.
__device__ void write_one_hot(float* x, int64_t V, int64_t best) {
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) x[i] = i == best ? 0.f : -INFINITY;
}

// Sum over the block of weight(x[i]) for rank_key(x[i]) >= thr.
__device__ double mass_from(const float* x, int64_t V, float m, uint64_t thr, NormalizeSmem& sm) {
  KahanSum s;
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
    const float v = x[i];
    if (rank_key(v, i, V) >= thr) s.add(weight(v, m));
  }
  return block_reduce(s.value(), 0.0, SumOp{}, sm.red_f64);
}

// The slow path's selection: the rank key thr such that {key >= thr} is the kept prefix.
// By count: the `need`-th largest key (floor must be 0). By mass: among keys >= floor, the
// smallest prefix of the order whose mass reaches `need`. Descends one 8-bit digit per
// pass (the 4 value bytes, then the index bytes V - 1 needs), counting that digit's bins
// among the keys that share the digits chosen so far. Returned to every thread.
__device__ uint64_t radix_select(const float* x, int64_t V, float m, uint64_t floor, bool by_mass, double need,
                                 NormalizeSmem& sm) {
  int index_bytes = 0;
  for (int64_t v = V - 1; v > 0; v >>= 8) ++index_bytes;
  uint64_t prefix = 0, mask = 0;
  double above = 0.0;  // count or mass of the keys above the current bucket
  for (int digit = 0; digit < 4 + index_bytes; ++digit) {
    const int shift = digit < 4 ? 56 - 8 * digit : 8 * (index_bytes - 1 - (digit - 4));
    for (int b = threadIdx.x; b < 256; b += blockDim.x) {
      sm.hist_count[b] = 0;
      sm.hist_mass[b] = 0.0;
    }
    __syncthreads();
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
      const float v = x[i];
      const uint64_t key = rank_key(v, i, V);
      if (key < floor || (key & mask) != prefix) continue;
      const unsigned d = static_cast<unsigned>(key >> shift) & 0xFFu;
      atomicAdd(&sm.hist_count[d], 1u);
      if (by_mass) atomicAdd(&sm.hist_mass[d], static_cast<double>(weight(v, m)));
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      double acc = above;
      int pick = -1, lowest = -1;
      bool done = false;
      for (int d = 255; d >= 0; --d) {
        const unsigned c = sm.hist_count[d];
        if (c == 0) continue;
        const double add = by_mass ? sm.hist_mass[d] : static_cast<double>(c);
        if (acc + add >= need) {
          pick = d;
          // The whole bin is kept (count), or the bin is one key (mass): no finer digit needed.
          done = by_mass ? c == 1 : acc + add == need;
          break;
        }
        acc += add;
        lowest = d;
      }
      if (pick < 0) {  // rounding: the bucket's mass never reached `need`, so keep all of it
        pick = lowest < 0 ? 0 : lowest;
        done = true;
      }
      sm.sel_prefix = prefix | (static_cast<uint64_t>(pick) << shift);
      sm.sel_above = acc;
      sm.sel_done = done;
    }
    __syncthreads();
    prefix = sm.sel_prefix;
    above = sm.sel_above;
    mask |= uint64_t{0xFF} << shift;
    const bool done = sm.sel_done != 0;
    __syncthreads();  // sel_* and the bins are rewritten by the next pass
    if (done) break;
  }
  // Keys below floor may share the chosen bin's digits; they stay out.
  return prefix > floor ? prefix : floor;
}

__global__ void __launch_bounds__(kThreads)
    normalize_kernel(const float* __restrict__ logits, float* __restrict__ out, int64_t R, int64_t V, float T,
                     int64_t top_k, float top_p) {
  __shared__ NormalizeSmem sm;
  const bool use_k = top_k > 0 && top_k < V;
  const bool use_p = top_p > 0.f && top_p < 1.f;
  for (int64_t r = blockIdx.x; r < R; r += gridDim.x) {
    const float* in = logits + r * V;
    float* x = out + r * V;

    // Pass 1: the scaled row, and its top key (the maximum, lowest id on ties, NaN above all).
    uint64_t top = 0;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
      float v = in[i];
      if (T > 0.f) {
        v = v / T;
        x[i] = v;
      }
      const uint64_t k = rank_key(v, i, V);
      top = k > top ? k : top;
    }
    top = block_reduce(top, uint64_t{0}, MaxOp{}, sm.red_u64);
    const int64_t best = rank_index(top, V);
    const float m = key_value(static_cast<uint32_t>(top >> 32));
    // Greedy, or no finite maximum (see the CPU reference): one-hot on the argmax.
    if (T == 0.f || !isfinite(m)) {
      write_one_hot(x, V, best);
      continue;
    }

    if (!use_k && !use_p) {
      const float log_z = static_cast<float>(log(mass_from(x, V, m, 0, sm)));
      for (int64_t i = threadIdx.x; i < V; i += blockDim.x) x[i] = (x[i] - m) - log_z;
      continue;
    }

    // Pass 2: how many tokens (and how much mass) lie within 2^b of the maximum, and in all.
    // The near masses only pick a bucket; the total is top-p's denominator, so compensated.
    int cnt[kBuckets] = {};
    float mass[kBuckets] = {};
    KahanSum all;
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
      const float v = x[i];
      const float d = m - v;
      if (!(d < INFINITY)) continue;  // -inf: no mass, in no bucket
      const float w = weight(v, m);
      ++cnt[kNearBuckets];
      all.add(w);
      if (d <= static_cast<float>(1 << (kNearBuckets - 1))) {
#pragma unroll
        for (int b = 0; b < kNearBuckets; ++b) {
          if (d <= static_cast<float>(1 << b)) {
            ++cnt[b];
            mass[b] += w;
          }
        }
      }
    }
    int64_t count[kBuckets];
    double bucket_mass[kBuckets];
#pragma unroll
    for (int b = 0; b < kBuckets; ++b) {
      count[b] = block_reduce(cnt[b], 0, SumOp{}, sm.red_i32);
      const double own = b == kNearBuckets ? all.value() : static_cast<double>(mass[b]);
      bucket_mass[b] = block_reduce(own, 0.0, SumOp{}, sm.red_f64);
    }
    const int64_t finite = count[kNearBuckets];
    const double finite_mass = bucket_mass[kNearBuckets];
    // Top-k keeps k_eff finite tokens (tokens past the finite ones are -inf either way).
    const int64_t k_eff = use_k ? (top_k < finite ? top_k : finite) : finite;
    // The smallest bucket that must hold the kept prefix: k_eff tokens with top-k (top-p
    // keeps a prefix of those), or the top-p mass without it.
    int bucket = -1;
    for (int b = 0; b < kBuckets; ++b) {
      const bool covers = use_k ? count[b] >= k_eff : bucket_mass[b] >= static_cast<double>(top_p) * finite_mass;
      if (covers || b == kNearBuckets) {
        if (count[b] <= kCap) bucket = b;
        break;
      }
    }

    uint64_t thr = 0;  // kept: rank key >= thr
    if (bucket >= 0) {
      // Pass 3: gather the bucket's keys (same predicate as pass 2).
      const float delta = bucket < kNearBuckets ? static_cast<float>(1 << bucket) : INFINITY;
      if (threadIdx.x == 0) sm.slot = 0;
      __syncthreads();
      const unsigned lane = threadIdx.x & 31u;
      for (int64_t base = 0; base < V; base += blockDim.x) {
        const int64_t i = base + threadIdx.x;
        float v = 0.f;
        bool take = false;
        if (i < V) {
          v = x[i];
          const float d = m - v;
          take = d < INFINITY && d <= delta;
        }
        const unsigned ballot = __ballot_sync(0xffffffffu, take);
        int first_slot = 0;
        if (lane == 0 && ballot != 0) first_slot = atomicAdd(&sm.slot, __popc(ballot));
        first_slot = __shfl_sync(0xffffffffu, first_slot, 0);
        if (take) {
          const int s = first_slot + __popc(ballot & ((1u << lane) - 1u));
          if (s < kCap) sm.keys[s] = rank_key(v, i, V);
        }
      }
      __syncthreads();
      const int n = sm.slot < kCap ? sm.slot : kCap;
      // Bitonic sort, descending; padding keys of 0 sort after every finite token's key.
      int p2 = 1;
      while (p2 < n) p2 <<= 1;
      for (int i = n + threadIdx.x; i < p2; i += blockDim.x) sm.keys[i] = 0;
      __syncthreads();
      for (int k = 2; k <= p2; k <<= 1) {
        for (int j = k >> 1; j > 0; j >>= 1) {
          for (int i = threadIdx.x; i < p2; i += blockDim.x) {
            const int l = i ^ j;
            if (l > i) {
              const uint64_t a = sm.keys[i], c = sm.keys[l];
              if ((i & k) == 0 ? a < c : a > c) {
                sm.keys[i] = c;
                sm.keys[l] = a;
              }
            }
          }
          __syncthreads();
        }
      }
      const int kk = static_cast<int>(k_eff < n ? k_eff : n);
      int keep = kk;
      if (use_p) {
        // Top-p's denominator: the mass of the top-k survivors (of every token without top-k).
        double total = finite_mass;
        if (use_k) {
          float s = 0.f;
          for (int i = threadIdx.x; i < kk; i += blockDim.x) {
            s += weight(key_value(static_cast<uint32_t>(sm.keys[i] >> 32)), m);
          }
          total = block_reduce(static_cast<double>(s), 0.0, SumOp{}, sm.red_f64);
        }
        const double target = static_cast<double>(top_p) * total;
        // The first position whose running mass reaches the target, a tile at a time.
        double carry = 0.0;
        for (int base = 0; base < kk; base += blockDim.x) {
          const int i = base + threadIdx.x;
          const double w =
              i < kk ? static_cast<double>(weight(key_value(static_cast<uint32_t>(sm.keys[i] >> 32)), m)) : 0.0;
          double tile = 0.0;
          const double cum = carry + block_exclusive_scan(w, sm.red_f64, &tile) + w;
          const int hit = i < kk && cum >= target ? i : INT_MAX;
          const int first = block_reduce(hit, INT_MAX, MinOp{}, sm.red_i32);
          if (first != INT_MAX) {
            keep = first + 1;
            break;
          }
          carry += tile;
        }
      }
      thr = sm.keys[keep - 1];
    } else {
      // Slow path: no small enough set holds the kept prefix.
      uint64_t floor = 0;
      double total = finite_mass;
      if (use_k) {
        floor = radix_select(x, V, m, 0, false, static_cast<double>(top_k), sm);
        total = mass_from(x, V, m, floor, sm);
      }
      thr = use_p ? radix_select(x, V, m, floor, true, static_cast<double>(top_p) * total, sm) : floor;
    }

    // Renormalise over the kept tokens and write the row.
    const float log_z = static_cast<float>(log(mass_from(x, V, m, thr, sm)));
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
      const float v = x[i];
      x[i] = rank_key(v, i, V) >= thr ? (v - m) - log_z : -INFINITY;
    }
  }
}

// Row r of logprobs starts at r * row_stride (0: every draw reads the same row).
__global__ void __launch_bounds__(kThreads)
    sample_kernel(const float* __restrict__ logprobs, int64_t* __restrict__ out, int64_t R, int64_t V,
                  int64_t row_stride, uint64_t seed, uint64_t offset) {
  __shared__ double red_f64[32];
  __shared__ long long red_i64[32];
  const int64_t chunk = (V + blockDim.x - 1) / blockDim.x;
  const int64_t b = imin(V, static_cast<int64_t>(threadIdx.x) * chunk), e = imin(V, b + chunk);
  for (int64_t r = blockIdx.x; r < R; r += gridDim.x) {
    const float* row = logprobs + r * row_stride;
    const double u = rng::uniform(seed, offset + static_cast<uint64_t>(r));
    double local = 0.0;
    long long last = -1;  // this chunk's last id with mass
    for (int64_t v = b; v < e; ++v) {
      const float p = expf(row[v]);
      if (!(p > 0.f)) continue;
      local += p;
      last = v;
    }
    double total = 0.0;
    double cum = block_exclusive_scan(local, red_f64, &total);
    // The first id (in this chunk) where the running sum exceeds u; chunks before the
    // crossing find none, chunks after it hit at once and lose the min below.
    long long hit = LLONG_MAX;
    for (int64_t v = b; v < e; ++v) {
      const float p = expf(row[v]);
      if (!(p > 0.f)) continue;
      cum += p;
      if (cum > u) {
        hit = v;
        break;
      }
    }
    long long pick = block_reduce(hit, LLONG_MAX, MinOp{}, red_i64);
    if (pick == LLONG_MAX) pick = block_reduce(last, -1LL, MaxOp{}, red_i64);  // -1: no mass at all
    if (threadIdx.x == 0) out[r] = pick;
  }
}

void check_sizes(const char* op, int64_t rows, int64_t V) {
  if (rows < 0 || V < 0) fail(op, "negative size");
  if (V >= INT32_MAX) fail(op, "rows of 2^31 or more tokens are not supported");
}

// `draws` rows of sample_kernel, row r reading logprobs + r * row_stride.
void launch_sample(const char* op, const float* logprobs, int64_t* out, int64_t draws, int64_t V, int64_t row_stride,
                   uint64_t seed, uint64_t offset, cudaStream_t stream) {
  check_sizes(op, draws, V);
  if (draws == 0) return;
  if (V == 0) fail(op, "rows without tokens");
  sample_kernel<<<grid_for(draws, 1), kThreads, 0, stream>>>(logprobs, out, draws, V, row_stride, seed, offset);
  check_launch(op);
}

}  // namespace

void normalize(const float* logits, float* out, int64_t R, int64_t V, float temperature, int64_t top_k,
               float top_p, cudaStream_t stream) {
  check_sizes("normalize", R, V);
  if (R == 0 || V == 0) return;
  normalize_kernel<<<grid_for(R, 1), kThreads, 0, stream>>>(logits, out, R, V, temperature, top_k, top_p);
  check_launch("normalize");
}

void sample(const float* logprobs, int64_t* out, int64_t R, int64_t V, uint64_t seed, uint64_t offset,
            cudaStream_t stream) {
  launch_sample("sample", logprobs, out, R, V, V, seed, offset, stream);
}

void sample_repeat(const float* logprobs, int64_t* out, int64_t draws, int64_t V, uint64_t seed, uint64_t offset,
                   cudaStream_t stream) {
  launch_sample("sample_repeat", logprobs, out, draws, V, 0, seed, offset, stream);
}

}  // namespace mtad::cuda
