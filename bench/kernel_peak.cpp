// bench/kernel_peak: the CPU matrix kernels against this machine's FMA peak and memory
// read bandwidth, measured first in the same run.
//
//   kernel_peak [--threads N] [--seconds S] [--tokens 1,2,4,8,16,32] [--dtypes f32,f16,bf16]
//
// Peak: a loop of independent FMA chains (12 accumulators in registers, as wide as the
// kernels' panels: 8 lanes, or 16 in a build for AVX-512), on one thread and on N. Bandwidth: N threads summing a 512 MB array. Then, on SmolLM2-135M's shapes
// (hidden 576, 9 heads / 3 kv heads of 64, FFN 1536, vocab 49152, 30 layers), for each
// weight dtype and T tokens, the kernels the CPU forward runs (q/k/v with RoPE, o + residual,
// gate/up + SiLU, down + residual, the logits) on N threads splitting output rows as the
// forward does:
//   cached:  one layer's matrices, repeated, so the weights come from the caches: what the
//            kernel itself reaches (GMAC/s, % of the N-thread FMA peak);
//   stream:  all 30 layers and the logits, weights from memory as in a real forward (each
//            thread's share of each layer timed on its own, best of passes, summed): GMAC/s, % of peak, and GB/s
//            of weights read against the bandwidth.
// Every figure is the best of repeats, timed in each thread's CPU time (on a machine shared
// with other work, the least disturbed run, and no time slices of other programs counted);
// threads run their shares without barriers between runs. Peak and bandwidth are timed the
// same way, so the percentages compare like with like.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "ops/fused.h"
#include "ops/linear.h"

namespace {

using Clock = std::chrono::steady_clock;
using mtad::ops::cpu::Epilogue;
using mtad::ops::cpu::Layout;
using mtad::ops::cpu::Mat;
using mtad::ops::cpu::Packing;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// CPU seconds of the calling thread: blind to the time slices other programs take from it.
double cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// Multiply-adds per second of `iters` rounds of 12 independent 8-wide FMA chains.
#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) double fma_rate(int64_t iters) {
  constexpr int kChains = 12;
  __m256 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm256_set1_ps(0.5f + 0.01f * j);
  // acc = acc * a + b converges to b / (1 - a) = 1: no overflow, no denormals.
  const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(0.001f);
  const double t = cpu_now();
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < kChains; ++j) acc[j] = _mm256_fmadd_ps(acc[j], a, b);
  }
  const double s = cpu_now() - t;
  __m256 sum = acc[0];
  for (int j = 1; j < kChains; ++j) sum = _mm256_add_ps(sum, acc[j]);
  alignas(32) float out[8];
  _mm256_store_ps(out, sum);
  volatile float sink = out[0];
  (void)sink;
  return static_cast<double>(iters) * kChains * 8 / s;
}

// The same with 16-wide chains, for kernels built for AVX-512 (16-row panels).
__attribute__((target("avx512f"))) double fma_rate16(int64_t iters) {
  constexpr int kChains = 12;
  __m512 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_ps(0.5f + 0.01f * j);
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(0.001f);
  const double t = cpu_now();
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_fmadd_ps(acc[j], a, b);
  }
  const double s = cpu_now() - t;
  __m512 sum = acc[0];
  for (int j = 1; j < kChains; ++j) sum = _mm512_add_ps(sum, acc[j]);
  volatile float sink = _mm512_reduce_add_ps(sum);
  (void)sink;
  return static_cast<double>(iters) * kChains * 16 / s;
}

// The FMA loop as wide as the kernels' panels.
double fma_rate_kernels(int64_t iters) {
  return mtad::ops::cpu::panel_rows() == 16 ? fma_rate16(iters) : fma_rate(iters);
}

// Bytes per second one thread reads summing [p, p + n) with 8-wide loads.
__attribute__((target("avx2"))) float sum_floats(const float* p, int64_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  for (int64_t i = 0; i + 32 <= n; i += 32) {
    s0 = _mm256_add_ps(s0, _mm256_loadu_ps(p + i));
    s1 = _mm256_add_ps(s1, _mm256_loadu_ps(p + i + 8));
    s2 = _mm256_add_ps(s2, _mm256_loadu_ps(p + i + 16));
    s3 = _mm256_add_ps(s3, _mm256_loadu_ps(p + i + 24));
  }
  alignas(32) float out[8];
  _mm256_store_ps(out, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  return out[0] + out[7];
}
#else
double fma_rate_kernels(int64_t) { return 0.0; }
float sum_floats(const float* p, int64_t n) {
  float s = 0.f;
  for (int64_t i = 0; i < n; ++i) s += p[i];
  return s;
}
#endif

// FMA peak (multiply-adds per second) of `threads` threads running the loop at once: the
// best of many short runs (~2 ms each, so that some fall between other programs' slices).
double fma_peak(int threads) {
  const int64_t iters = 500'000;
  double best = 0;
  const Clock::time_point start = Clock::now();
  while (seconds_since(start) < 0.6) {
    std::vector<double> each(threads);
#pragma omp parallel num_threads(threads)
    each[omp_get_thread_num()] = fma_rate_kernels(iters);
    double total = 0;
    for (double r : each) total += r;
    best = std::max(best, total);
  }
  return best;
}

// Read bandwidth (bytes per second) of `threads` threads summing 64 MB slices (twice the
// L3) of a 512 MB array in turn: the best slice of 48.
double read_bandwidth(int threads) {
  const int64_t n = (512LL << 20) / 4, slice = (64LL << 20) / 4;
  std::vector<float> a(n, 1.f);
  double best = 0;
  for (int rep = 0; rep < 48; ++rep) {
    const float* p = a.data() + rep % (n / slice) * slice;
    std::vector<double> each(threads, 0.0);
#pragma omp parallel num_threads(threads)
    {
      int64_t b, e;
      mtad::ops::cpu::split_range(slice, omp_get_thread_num(), omp_get_num_threads(), 1024, b, e);
      const double t = cpu_now();
      const float sum = sum_floats(p + b, e - b);
      each[omp_get_thread_num()] = (e - b) * 4.0 / (cpu_now() - t);
      if (sum < 0) std::printf(" ");  // keeps the sum alive
    }
    double total = 0;
    for (double r : each) total += r;
    if (rep >= n / slice) best = std::max(best, total);  // after one pass over the array
  }
  return best;
}

// One layer's weights in the forward's panel layouts, random N(0, 0.02), of one dtype.
struct Layer {
  at::Tensor q, k, v, o, gate, up, down;
  Mat mq, mk, mv, mo, mgate, mup, mdown;
};
constexpr int64_t kHidden = 576, kHeads = 9, kKvHeads = 3, kHeadDim = 64, kFfn = 1536, kVocab = 49152, kLayers = 30;

std::pair<at::Tensor, Mat> packed(int64_t rows, int64_t cols, at::ScalarType dt, Packing pk) {
  at::Tensor w = (at::randn({rows, cols}) * 0.02).to(dt).contiguous();
  at::Tensor out = at::empty({mtad::ops::cpu::panel_count(rows, pk.layout), cols, mtad::ops::cpu::panel_rows()}, w.options());
  mtad::ops::cpu::pack_panels(w, pk, out);
  return {out, mtad::ops::cpu::mat_of(out, at::Tensor(), rows, pk)};
}

Layer make_layer(at::ScalarType dt) {
  Layer L;
  const Packing rope{Layout::kRopePanels, kHeadDim}, plain{};
  std::tie(L.q, L.mq) = packed(kHeads * kHeadDim, kHidden, dt, rope);
  std::tie(L.k, L.mk) = packed(kKvHeads * kHeadDim, kHidden, dt, rope);
  std::tie(L.v, L.mv) = packed(kKvHeads * kHeadDim, kHidden, dt, plain);
  std::tie(L.o, L.mo) = packed(kHidden, kHeads * kHeadDim, dt, plain);
  std::tie(L.gate, L.mgate) = packed(kFfn, kHidden, dt, plain);
  std::tie(L.up, L.mup) = packed(kFfn, kHidden, dt, plain);
  std::tie(L.down, L.mdown) = packed(kHidden, kFfn, dt, plain);
  return L;
}

// Activations and outputs of one forward of T tokens.
struct Buffers {
  at::Tensor x, q, kv, attn, mlp, res, logits, cs, sn;
  explicit Buffers(int64_t T) {
    x = at::randn({T, kHidden});
    q = at::empty({T, kHeads * kHeadDim});
    kv = at::empty({T, kKvHeads * kHeadDim});
    attn = at::randn({T, kHeads * kHeadDim});
    mlp = at::randn({T, kFfn}) * 0.1;
    res = at::randn({T, kHidden});
    logits = at::empty({T, kVocab});
    at::Tensor angle = at::rand({T, kHeadDim / 2}) * 6.28;
    cs = angle.cos().contiguous();
    sn = angle.sin().contiguous();
  }
};

// The forward's matrix phases; `phase` runs on every thread with its share of the rows.
enum Phase { kQkv, kO, kGateUp, kDown, kLogits, kPhases };
const char* kPhaseName[kPhases] = {"qkv", "o", "gate_up", "down", "logits"};
int64_t phase_macs(Phase p) {
  switch (p) {
    case kQkv: return (kHeads + 2 * kKvHeads) * kHeadDim * kHidden;
    case kO: return kHidden * kHeads * kHeadDim;
    case kGateUp: return 2 * kFfn * kHidden;
    case kDown: return kHidden * kFfn;
    default: return kVocab * kHidden;
  }
}

void run_phase(Phase p, const Layer& L, const Mat& head, Buffers& B, int64_t T, int tid, int nth) {
  using namespace mtad::ops::cpu;
  int64_t b = 0, e = 0;
  auto part = [&](int64_t n) { split_range(n, tid, nth, 16, b, e); };
  float* x = B.x.data_ptr<float>();
  switch (p) {
    case kQkv:
      part(proj_units(L.mq, true));
      proj_rows(x, T, L.mq, kHeadDim, B.cs.data_ptr<float>(), B.sn.data_ptr<float>(), B.q.data_ptr<float>(),
                kHeads * kHeadDim, b, e);
      part(proj_units(L.mk, true));
      proj_rows(x, T, L.mk, kHeadDim, B.cs.data_ptr<float>(), B.sn.data_ptr<float>(), B.kv.data_ptr<float>(),
                kKvHeads * kHeadDim, b, e);
      part(L.mv.rows);
      proj_rows(x, T, L.mv, kHeadDim, nullptr, nullptr, B.kv.data_ptr<float>(), kKvHeads * kHeadDim, b, e);
      break;
    case kO:
      part(kHidden);
      matvec_rows(B.attn.data_ptr<float>(), T, L.mo, Epilogue::kAdd, B.res.data_ptr<float>(), kHidden,
                  B.res.data_ptr<float>(), kHidden, b, e);
      break;
    case kGateUp:
      part(kFfn);
      gate_up_rows(x, T, L.mgate, L.mup, B.mlp.data_ptr<float>(), b, e);
      break;
    case kDown:
      part(kHidden);
      matvec_rows(B.mlp.data_ptr<float>(), T, L.mdown, Epilogue::kAdd, B.res.data_ptr<float>(), kHidden,
                  B.res.data_ptr<float>(), kHidden, b, e);
      break;
    default:
      part(kVocab);
      matvec_rows(x, T, head, Epilogue::kStore, B.logits.data_ptr<float>(), kVocab, nullptr, 0, b, e);
  }
}

// Seconds per run of `body` on `threads` threads, each with its tid and its own share of
// the rows (no barrier between runs): every thread times each of its runs for `budget`
// seconds and keeps its best; the slowest thread's best is the answer. Best, not median:
// on a shared machine other programs only ever add time, and a run of a few hundred
// microseconds often fits between their time slices.
double time_parallel(int threads, double budget, const std::function<void(int, int)>& body) {
  std::vector<double> best(threads, 1e30);
#pragma omp parallel num_threads(threads)
  {
    const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
    const Clock::time_point start = Clock::now();
    for (int run = 0; run < 4 || seconds_since(start) < budget; ++run) {
      const double t = cpu_now();
      body(tid, nth);
      if (run > 0) best[tid] = std::min(best[tid], cpu_now() - t);
    }
  }
  return *std::max_element(best.begin(), best.end());
}

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(item);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = std::max(1, omp_get_max_threads());
  double budget = 0.3;
  std::string tokens = "1,2,4,8,16,32", dtypes = "f32,f16,bf16";
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 < argc && a == "--threads") threads = std::atoi(argv[++i]);
    else if (i + 1 < argc && a == "--seconds") budget = std::atof(argv[++i]);
    else if (i + 1 < argc && a == "--tokens") tokens = argv[++i];
    else if (i + 1 < argc && a == "--dtypes") dtypes = argv[++i];
    else {
      std::fprintf(stderr, "usage: kernel_peak [--threads N] [--seconds S] [--tokens 1,2,..] [--dtypes f32,f16,bf16]\n");
      return 2;
    }
  }
  at::set_num_threads(1);  // our own OpenMP regions run the kernels; ATen only builds inputs
  const double peak1 = fma_peak(1), peak = fma_peak(threads), bw = read_bandwidth(threads);
  std::printf("FMA peak: %.1f GMAC/s on 1 thread, %.1f GMAC/s on %d threads; read bandwidth %.1f GB/s\n",
              peak1 / 1e9, peak / 1e9, threads, bw / 1e9);
  std::printf("(cached: one layer's weights repeated, from the caches; stream: 30 layers + logits, weights "
              "from memory)\n");
  const std::map<std::string, at::ScalarType> kinds{{"f32", at::kFloat}, {"f16", at::kHalf}, {"bf16", at::kBFloat16}};
  for (const std::string& name : split(dtypes)) {
    const at::ScalarType dt = kinds.at(name);
    std::vector<Layer> layers;
    for (int64_t l = 0; l < kLayers; ++l) layers.push_back(make_layer(dt));
    auto [head_t, head] = packed(kVocab, kHidden, dt, Packing{});
    const double elem = at::elementSize(dt);
    std::printf("\n%s weights   %s | stream: %s\n", name.c_str(),
                "cached GMAC/s (% of peak): qkv     o       gate_up down   ",
                "ms/pass  GMAC/s  %peak   GB/s  %bw");
    for (const std::string& ts : split(tokens)) {
      const int64_t T = std::atoll(ts.c_str());
      Buffers B(T);
      std::printf("T=%-3lld   ", static_cast<long long>(T));
      std::string cached;
      for (int p = kQkv; p < kLogits; ++p) {
        const Phase ph = static_cast<Phase>(p);
        const double s = time_parallel(threads, budget / 4, [&](int tid, int nth) {
          run_phase(ph, layers[0], head, B, T, tid, nth);
        });
        const double rate = phase_macs(ph) * T / s;
        char buf[64];
        std::snprintf(buf, sizeof buf, " %5.1f (%2.0f%%)", rate / 1e9, 100 * rate / peak);
        cached += buf;
      }
      // Weights from memory: each layer's phases, and the logits, timed on their own
      // (threads meet at a barrier after each), best of passes over all 30 layers.
      int64_t macs = phase_macs(kLogits);
      for (int p = kQkv; p < kLogits; ++p) macs += kLayers * phase_macs(static_cast<Phase>(p));
      std::vector<std::vector<double>> best(threads, std::vector<double>(kLayers + 1, 1e30));
#pragma omp parallel num_threads(threads)
      {
        const int tid = omp_get_thread_num(), nth = omp_get_num_threads();
        const Clock::time_point start = Clock::now();
        for (int pass = 0; pass < 3 || seconds_since(start) < budget; ++pass)
          for (int64_t l = 0; l <= kLayers; ++l) {
            const double t = cpu_now();
            if (l < kLayers)
              for (int p = kQkv; p < kLogits; ++p) run_phase(static_cast<Phase>(p), layers[l], head, B, T, tid, nth);
            else
              run_phase(kLogits, layers[0], head, B, T, tid, nth);
            best[tid][l] = std::min(best[tid][l], cpu_now() - t);
          }
      }
      double s = 0;
      for (const auto& each : best) {
        double sum = 0;
        for (double b : each) sum += b;
        s = std::max(s, sum);
      }
      const double rate = macs * T / s, gbs = macs * elem / s;
      std::printf("%s | %7.2f %7.1f %5.0f%% %6.1f %4.0f%%\n", cached.c_str(), s * 1e3, rate / 1e9,
                  100 * rate / peak, gbs / 1e9, 100 * gbs / bw);
    }
  }
  return 0;
}
