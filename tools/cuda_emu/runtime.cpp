// The CUDA emulation's scheduler: each block of a launch runs its threads as fibers on the
// calling OS thread, switching only at __syncthreads and warp collectives, which are real
// rendezvous. Misuse a GPU would hang on or compute garbage from (a barrier not every
// thread reaches, a warp collective whose mask names lanes that never arrive or do not
// exist, a block past 1024 threads or past __launch_bounds__, too much shared memory) is
// reported as a cuda_emu::KernelError naming the source line. The order in which runnable
// threads (and blocks) are picked is forward, reverse or random (MTAD_EMU_ORDER), so that
// results depending on an unsynchronised order show up as mismatches.
#include "cuda_emu/runtime.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <queue>
#include <sstream>
#include <string>
#include <vector>

#include "cuda_emu/emu.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define CUDA_EMU_ASAN 1
#endif

#if defined(__x86_64__)
// Saves the callee-saved registers on the current stack, stores its pointer in *save and
// resumes the stack `next` (as left by a previous switch or by init_stack). No signal mask
// system call, unlike swapcontext: a collective costs a few switches per lane.
extern "C" void cuda_emu_switch(void** save, void* next);
__asm__(
    ".text\n"
    ".globl cuda_emu_switch\n"
    ".type cuda_emu_switch,@function\n"
    "cuda_emu_switch:\n"
    "  pushq %rbp\n"
    "  pushq %rbx\n"
    "  pushq %r12\n"
    "  pushq %r13\n"
    "  pushq %r14\n"
    "  pushq %r15\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  popq %r15\n"
    "  popq %r14\n"
    "  popq %r13\n"
    "  popq %r12\n"
    "  popq %rbx\n"
    "  popq %rbp\n"
    "  ret\n"
    ".size cuda_emu_switch,.-cuda_emu_switch\n");
#else
#include <ucontext.h>
#endif

namespace cuda_emu {

ThreadState* cur = nullptr;
BlockState block{};

namespace {

// ---- settings -------------------------------------------------------------------------------

struct Settings {
  Order order = Order::Forward;
  uint64_t seed = 1;
  size_t static_smem_limit = 48 * 1024;
  // Opt-in dynamic + static limit: 99 KiB, what sm_86 / sm_89 allow per block (the smallest
  // of the architectures mtad builds for; sm_80 allows 163 KiB and sm_90 227 KiB).
  size_t smem_optin_limit = 99 * 1024;
};

Settings read_env() {
  Settings s;
  if (const char* o = std::getenv("MTAD_EMU_ORDER")) {
    const std::string v(o);
    if (v == "forward" || v.empty()) {
      s.order = Order::Forward;
    } else if (v == "reverse") {
      s.order = Order::Reverse;
    } else if (v.rfind("random", 0) == 0) {
      s.order = Order::Random;
      if (v.size() > 7 && v[6] == ':') s.seed = std::strtoull(v.c_str() + 7, nullptr, 10);
    } else {
      std::fprintf(stderr, "cuda_emu: MTAD_EMU_ORDER=%s is not forward, reverse or random[:seed]\n", o);
      std::abort();
    }
  }
  if (const char* l = std::getenv("MTAD_EMU_SMEM_LIMIT")) s.smem_optin_limit = std::strtoull(l, nullptr, 10);
  return s;
}

Settings& settings() {
  static Settings s = read_env();
  return s;
}

Stats g_stats;

// ---- stacks ----------------------------------------------------------------------------------

#if defined(CUDA_EMU_ASAN)
constexpr size_t kStackBytes = 1 << 20;  // ASan's redzones make frames several times larger
#else
constexpr size_t kStackBytes = 256 << 10;
#endif

// mmap'd stacks with a PROT_NONE guard page below, so an overflow faults instead of
// corrupting a neighbour. Only touched pages cost memory; kept for the process lifetime.
struct Stack {
  char* base = nullptr;  // lowest usable byte
  size_t size = 0;
};

std::vector<Stack>& stack_pool() {
  static std::vector<Stack> pool;
  return pool;
}

const std::vector<Stack>& stacks_for(size_t n) {
  auto& pool = stack_pool();
  const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  while (pool.size() < n) {
    void* p = mmap(nullptr, kStackBytes + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::runtime_error("cuda_emu: cannot map a fiber stack");
    mprotect(p, page, PROT_NONE);
    pool.push_back({static_cast<char*>(p) + page, kStackBytes});
  }
  return pool;
}

// ---- the block being run ---------------------------------------------------------------------

struct Context {
#if defined(__x86_64__)
  void* sp = nullptr;
#else
  ucontext_t uc;
#endif
};

enum class FiberState { Ready, Running, AtBarrier, AtWarp, Done };

struct Fiber {
  ThreadState st{};
  FiberState state = FiberState::Ready;
  uint64_t result = 0;  // of the collective it waited in
  Stack stack;
  Context ctx;
  void* fake_stack = nullptr;  // ASan's bookkeeping across switches
};

struct PendingWarpOp {
  WarpOp op;
  const char* file;
  int line;
  unsigned mask, arrived;
  int width;
  uint64_t value[32];
  int arg[32];
};

constexpr size_t kRedzone = 64;
constexpr unsigned char kGuardByte = 0xCD;
constexpr unsigned char kFillByte = 0xFF;  // shared memory starts as NaN / -1 / UINT_MAX, not 0

struct SharedBuffer {
  const void* tag;
  std::unique_ptr<unsigned char[]> raw;
  unsigned char* data;
  size_t size;
  const char* file;
  int line;
  const char* name;
};

struct Run {
  Site site;
  const void* func;
  Config cfg;
  void (*body)(void*);
  void* ctx;
  unsigned n = 0;  // threads per block
  std::vector<Fiber> fibers;
  // barrier
  unsigned at_barrier = 0, done = 0;
  const char* bar_file = nullptr;
  int bar_line = 0;
  int bar_count = 0;
  std::vector<std::vector<PendingWarpOp>> warps;
  std::vector<unsigned> exited_lanes;  // per warp
  std::vector<SharedBuffer> shared;
  size_t static_bytes = 0;
  SharedBuffer dynamic{};
  std::priority_queue<std::pair<uint64_t, unsigned>, std::vector<std::pair<uint64_t, unsigned>>, std::greater<>>
      ready;
  uint64_t rng = 0;
  std::string error;
};

Run* g_run = nullptr;
Fiber* g_fiber = nullptr;
const void* g_sched_bottom = nullptr;  // ASan: the scheduler's stack, for switching back
size_t g_sched_size = 0;

std::map<const void*, int>& func_smem_attr() {
  static std::map<const void*, int> m;
  return m;
}

uint64_t next_random(uint64_t& s) {
  s += 0x9E3779B97F4A7C15ull;
  uint64_t z = s;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

void make_ready(Run& r, unsigned t) {
  r.fibers[t].state = FiberState::Ready;
  uint64_t key = t;
  switch (settings().order) {
    case Order::Forward: key = t; break;
    case Order::Reverse: key = r.n - 1 - t; break;
    case Order::Random: key = next_random(r.rng); break;
  }
  r.ready.emplace(key, t);
}

std::string where(const char* file, int line) {
  std::ostringstream s;
  s << (file ? file : "?") << ":" << line;
  return s.str();
}

std::string idx3(uint3 v) {
  std::ostringstream s;
  s << "(" << v.x << "," << v.y << "," << v.z << ")";
  return s.str();
}

const char* op_name(WarpOp op) {
  switch (op) {
    case WarpOp::ShflIdx: return "__shfl_sync";
    case WarpOp::ShflUp: return "__shfl_up_sync";
    case WarpOp::ShflDown: return "__shfl_down_sync";
    case WarpOp::ShflXor: return "__shfl_xor_sync";
    case WarpOp::Ballot: return "__ballot_sync";
    case WarpOp::Any: return "__any_sync";
    case WarpOp::All: return "__all_sync";
    case WarpOp::SyncWarp: return "__syncwarp";
    case WarpOp::MatchAny: return "__match_any_sync";
  }
  return "?";
}

std::string hex(unsigned m) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08x", m);
  return b;
}

std::string lane_list(unsigned m) {
  std::ostringstream s;
  bool first = true;
  for (int l = 0; l < 32; ++l) {
    if (!(m >> l & 1u)) continue;
    int e = l;
    while (e + 1 < 32 && (m >> (e + 1) & 1u)) ++e;
    s << (first ? "" : ",") << l;
    if (e > l) s << "-" << e;
    first = false;
    l = e;
  }
  return s.str();
}

// ---- switching -------------------------------------------------------------------------------

void fiber_main();

void init_fiber(Fiber& f) {
#if defined(__x86_64__)
  // Six callee-saved registers, then fiber_main as the return address of the first switch;
  // after that `ret` the stack pointer is 8 mod 16, as at any function entry.
  // Stack tops staggered by a multiple of 64 bytes: tops a power of two apart would all
  // fall into the same cache sets.
  const size_t stagger = (f.st.linear * 9u % 64u) * 64u + (f.st.linear % 16u) * 4096u;
  auto top = reinterpret_cast<uintptr_t>(f.stack.base + f.stack.size - stagger) & ~uintptr_t{15};
  auto* words = reinterpret_cast<void**>(top - 64);
  for (int i = 0; i < 6; ++i) words[i] = nullptr;
  words[6] = reinterpret_cast<void*>(&fiber_main);
  words[7] = nullptr;
  f.ctx.sp = words;
#else
  getcontext(&f.ctx.uc);
  f.ctx.uc.uc_stack.ss_sp = f.stack.base;
  f.ctx.uc.uc_stack.ss_size = f.stack.size;
  f.ctx.uc.uc_link = nullptr;
  makecontext(&f.ctx.uc, &fiber_main, 0);
#endif
}

void raw_switch(Context& save, Context& next) {
#if defined(__x86_64__)
  cuda_emu_switch(&save.sp, next.sp);
#else
  swapcontext(&save.uc, &next.uc);
#endif
}

Context g_sched;
bool g_entered_from_sched = false;

Fiber* pop_ready(Run& r) {
  if (!r.error.empty() || r.ready.empty()) return nullptr;
  const unsigned t = r.ready.top().second;
  r.ready.pop();
  Fiber& f = r.fibers[t];
  f.state = FiberState::Running;
  return &f;
}

// From the scheduler into the next runnable fiber; returns when no fiber can run.
void run_fibers(Run& r) {
  Fiber* f = pop_ready(r);
  if (f == nullptr) return;
#if defined(CUDA_EMU_ASAN)
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, f->stack.base, f->stack.size);
#endif
  g_fiber = f;
  cur = &f->st;
  g_entered_from_sched = true;
  ++g_stats.switches;
  raw_switch(g_sched, f->ctx);
#if defined(CUDA_EMU_ASAN)
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
  g_fiber = nullptr;
  cur = nullptr;
}

// The running fiber gives way: straight to the next runnable fiber (no detour through the
// scheduler), or back to the scheduler when none can run. `final` when it never resumes.
void yield(Fiber& f, bool final) {
  Run& r = *g_run;
  Fiber* next = pop_ready(r);
  if (next == &f) return;  // it is itself the next to run
#if defined(CUDA_EMU_ASAN)
  __sanitizer_start_switch_fiber(final ? nullptr : &f.fake_stack, next ? next->stack.base : g_sched_bottom,
                                 next ? next->stack.size : g_sched_size);
#endif
  ++g_stats.switches;
  g_entered_from_sched = false;
  if (next != nullptr) {
    g_fiber = next;
    cur = &next->st;
    raw_switch(f.ctx, next->ctx);
  } else {
    raw_switch(f.ctx, g_sched);
  }
#if defined(CUDA_EMU_ASAN)
  __sanitizer_finish_switch_fiber(f.fake_stack, nullptr, nullptr);
#endif
  (void)final;
}

Fiber& running(const char* what) {
  if (g_fiber == nullptr || g_run == nullptr) {
    throw std::logic_error(std::string("cuda_emu: ") + what + " called outside a kernel");
  }
  return *g_fiber;
}

[[noreturn]] void fail_in_fiber(const std::string& at, const std::string& what) {
  Fiber& f = running("an error");
  Run& r = *g_run;
  if (r.error.empty()) {
    std::ostringstream s;
    s << at << ": " << what << " [kernel " << r.site.kernel << " launched at " << where(r.site.file, r.site.line)
      << ", block " << idx3(block.block_idx) << ", thread " << idx3(f.st.thread_idx) << "]";
    r.error = s.str();
  }
  f.state = FiberState::Done;
  yield(f, true);
  std::abort();  // never resumed
}

void check_exit_while_waited_for(Run& r, Fiber& f) {
  if (r.at_barrier > 0) {
    fail_in_fiber(where(r.bar_file, r.bar_line),
                  "thread " + idx3(f.st.thread_idx) + " exited without reaching this __syncthreads(), which " +
                      std::to_string(r.at_barrier) + " thread(s) of the block wait at");
  }
  for (const PendingWarpOp& p : r.warps[f.st.warp]) {
    if (p.mask >> f.st.lane & 1u) {
      fail_in_fiber(where(p.file, p.line), std::string(op_name(p.op)) + " with mask " + hex(p.mask) + ": lane " +
                                               std::to_string(f.st.lane) +
                                               " exited without arriving, while lanes " + lane_list(p.arrived) +
                                               " wait for it");
    }
  }
}

void fiber_main() {
#if defined(CUDA_EMU_ASAN)
  const void* from_bottom = nullptr;
  size_t from_size = 0;
  __sanitizer_finish_switch_fiber(nullptr, &from_bottom, &from_size);
  if (g_entered_from_sched) {
    g_sched_bottom = from_bottom;
    g_sched_size = from_size;
  }
#endif
  Fiber& f = *g_fiber;
  Run& r = *g_run;
  try {
    r.body(r.ctx);
  } catch (const std::exception& e) {
    fail_in_fiber("(kernel)", std::string("device code threw: ") + e.what());
  }
  ++r.done;
  r.exited_lanes[f.st.warp] |= 1u << f.st.lane;
  f.state = FiberState::Done;
  check_exit_while_waited_for(r, f);
  yield(f, true);
  std::abort();
}

// ---- checks at the end of a block --------------------------------------------------------------

bool guards_intact(const SharedBuffer& b) {
  if (!b.raw) return true;
  const unsigned char* lo = b.data - kRedzone;
  const unsigned char* hi = b.data + b.size;
#if defined(CUDA_EMU_ASAN)
  ASAN_UNPOISON_MEMORY_REGION(lo, kRedzone);
  ASAN_UNPOISON_MEMORY_REGION(hi, kRedzone);
#endif
  for (size_t i = 0; i < kRedzone; ++i) {
    if (lo[i] != kGuardByte || hi[i] != kGuardByte) return false;
  }
  return true;
}

std::string deadlock_report(const Run& r) {
  std::ostringstream s;
  s << "deadlock: no thread of the block can run.";
  if (r.at_barrier > 0) {
    s << " " << r.at_barrier << " of " << r.n << " thread(s) wait at the __syncthreads() at "
      << where(r.bar_file, r.bar_line) << ".";
  }
  for (size_t w = 0; w < r.warps.size(); ++w) {
    for (const PendingWarpOp& p : r.warps[w]) {
      s << " Warp " << w << ": lanes " << lane_list(p.arrived) << " wait in " << op_name(p.op) << " at "
        << where(p.file, p.line) << " (mask " << hex(p.mask) << ") for lanes " << lane_list(p.mask & ~p.arrived)
        << ".";
    }
  }
  return s.str();
}

SharedBuffer make_buffer(const void* tag, size_t size, size_t align, const char* file, int line, const char* name) {
  SharedBuffer b{tag, nullptr, nullptr, size, file, line, name};
  align = std::max<size_t>(align, 16);
  b.raw = std::make_unique<unsigned char[]>(size + 2 * kRedzone + align);
  auto start = reinterpret_cast<uintptr_t>(b.raw.get()) + kRedzone;
  start = (start + align - 1) / align * align;
  b.data = reinterpret_cast<unsigned char*>(start);
  std::memset(b.data - kRedzone, kGuardByte, kRedzone);
  std::memset(b.data, kFillByte, size);
  std::memset(b.data + size, kGuardByte, kRedzone);
#if defined(CUDA_EMU_ASAN)
  ASAN_POISON_MEMORY_REGION(b.data - kRedzone, kRedzone);
  ASAN_POISON_MEMORY_REGION(b.data + size, kRedzone);
#endif
  return b;
}

void release_buffer(SharedBuffer& b) {
  if (!b.raw) return;
#if defined(CUDA_EMU_ASAN)
  ASAN_UNPOISON_MEMORY_REGION(b.data - kRedzone, b.size + 2 * kRedzone);
#endif
  b.raw.reset();
}

// After an error, fibers were abandoned mid-frame: clear ASan's marks on their stacks before
// the stacks are reused.
void scrub_stacks(Run& r) {
#if defined(CUDA_EMU_ASAN)
  for (Fiber& f : r.fibers) ASAN_UNPOISON_MEMORY_REGION(f.stack.base, f.stack.size);
#else
  (void)r;
#endif
}

void run_block(Run& r, uint3 bidx) {
  block.block_idx = bidx;
  r.at_barrier = 0;
  r.done = 0;
  r.bar_file = nullptr;
  for (auto& w : r.warps) w.clear();
  std::fill(r.exited_lanes.begin(), r.exited_lanes.end(), 0u);
  r.static_bytes = 0;
  r.dynamic = make_buffer(nullptr, r.cfg.smem, 16, r.site.file, r.site.line, "(dynamic shared memory)");
  const dim3 bd = r.cfg.block;
  for (unsigned t = 0; t < r.n; ++t) {
    Fiber& f = r.fibers[t];
    f.st.thread_idx = {t % bd.x, (t / bd.x) % bd.y, t / (bd.x * bd.y)};
    f.st.linear = t;
    f.st.lane = t & 31u;
    f.st.warp = t >> 5;
    f.result = 0;
    f.fake_stack = nullptr;
    init_fiber(f);
    make_ready(r, t);
  }
  ++g_stats.blocks;
  g_stats.threads += r.n;
  run_fibers(r);
  std::string err = r.error;
  if (err.empty() && r.done != r.n) {
    err = where(r.site.file, r.site.line) + ": " + deadlock_report(r) + " [kernel " + r.site.kernel + ", block " +
          idx3(bidx) + "]";
  }
  for (const SharedBuffer& b : r.shared) {
    if (err.empty() && !guards_intact(b)) {
      err = where(b.file, b.line) + ": a write outside the bounds of __shared__ " + b.name + " (declared here) [kernel " +
            r.site.kernel + ", block " + idx3(bidx) + "]";
    }
  }
  if (err.empty() && !guards_intact(r.dynamic)) {
    err = where(r.site.file, r.site.line) + ": a write outside the " + std::to_string(r.cfg.smem) +
          " bytes of dynamic shared memory [kernel " + r.site.kernel + ", block " + idx3(bidx) + "]";
  }
  for (SharedBuffer& b : r.shared) release_buffer(b);
  r.shared.clear();
  release_buffer(r.dynamic);
  if (!err.empty()) {
    scrub_stacks(r);
    while (!r.ready.empty()) r.ready.pop();
    throw KernelError(err);
  }
}

std::mutex& launch_mutex() {
  static std::mutex m;
  return m;
}

[[noreturn]] void launch_error(const Site& site, const std::string& what) {
  throw KernelError(where(site.file, site.line) + ": launch of " + site.kernel + ": " + what);
}

void check_config(const Site& site, const void* func, const Config& c) {
  const dim3 b = c.block, g = c.grid;
  const unsigned long long threads = 1ull * b.x * b.y * b.z;
  std::ostringstream dims;
  dims << b.x << "x" << b.y << "x" << b.z;
  if (threads == 0) launch_error(site, "empty block " + dims.str());
  if (b.x > 1024 || b.y > 1024 || b.z > 64 || threads > 1024) {
    launch_error(site, "a block of " + dims.str() + " = " + std::to_string(threads) +
                           " threads; a GPU allows at most 1024 (and 1024, 1024, 64 per dimension)");
  }
  if (g.x == 0 || g.y == 0 || g.z == 0) launch_error(site, "empty grid");
  if (g.x > 2147483647u || g.y > 65535u || g.z > 65535u) launch_error(site, "grid dimensions past the GPU's limits");
  if (c.smem > 48 * 1024) {
    const auto it = func_smem_attr().find(func);
    const size_t allowed = it == func_smem_attr().end() ? 48 * 1024 : static_cast<size_t>(it->second);
    if (c.smem > allowed) {
      launch_error(site, std::to_string(c.smem) +
                             " bytes of dynamic shared memory need cudaFuncSetAttribute("
                             "cudaFuncAttributeMaxDynamicSharedMemorySize) first (the default limit is 48 KiB)");
    }
  }
  if (c.smem > settings().smem_optin_limit) {
    launch_error(site, std::to_string(c.smem) + " bytes of dynamic shared memory, more than the " +
                           std::to_string(settings().smem_optin_limit) + " a block may have on every target GPU");
  }
}

}  // namespace

// ---- collectives ------------------------------------------------------------------------------

int syncthreads_count(const char* file, int line, int pred) {
  Fiber& f = running("__syncthreads");
  Run& r = *g_run;
  if (r.done > 0) {
    fail_in_fiber(where(file, line), std::to_string(r.done) +
                                         " thread(s) of the block already exited: a __syncthreads() must be reached "
                                         "by every thread of the block");
  }
  if (r.at_barrier == 0) {
    r.bar_file = file;
    r.bar_line = line;
    r.bar_count = 0;
  } else if (r.bar_line != line || std::strcmp(r.bar_file, file) != 0) {
    fail_in_fiber(where(file, line), "divergent barriers: this thread reached __syncthreads() here while " +
                                         std::to_string(r.at_barrier) + " thread(s) wait at the one at " +
                                         where(r.bar_file, r.bar_line));
  }
  for (const PendingWarpOp& p : r.warps[f.st.warp]) {
    if (p.mask >> f.st.lane & 1u) {
      fail_in_fiber(where(file, line), "lane " + std::to_string(f.st.lane) +
                                           " reached __syncthreads() while lanes " + lane_list(p.arrived) +
                                           " of its warp wait for it in " + op_name(p.op) + " at " +
                                           where(p.file, p.line));
    }
  }
  ++r.at_barrier;
  r.bar_count += pred != 0;
  f.state = FiberState::AtBarrier;
  if (r.at_barrier == r.n) {
    const int count = r.bar_count;
    r.at_barrier = 0;
    for (unsigned t = 0; t < r.n; ++t) {
      r.fibers[t].result = static_cast<uint64_t>(count);
      make_ready(r, t);
    }
  }
  yield(f, false);
  return static_cast<int>(f.result);
}

void syncthreads(const char* file, int line) { (void)syncthreads_count(file, line, 0); }

uint64_t warp_collective(WarpOp op, const char* file, int line, unsigned mask, uint64_t value, int arg, int width) {
  Fiber& f = running(op_name(op));
  Run& r = *g_run;
  const unsigned lane = f.st.lane, w = f.st.warp;
  const unsigned lanes = std::min(32u, r.n - 32u * w);
  const unsigned exist = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1u;
  if (!(mask >> lane & 1u)) {
    fail_in_fiber(where(file, line), std::string(op_name(op)) + " with mask " + hex(mask) + " called by lane " +
                          std::to_string(lane) + ", which the mask does not include");
  }
  if (mask & ~exist) {
    fail_in_fiber(where(file, line), std::string(op_name(op)) + " with mask " + hex(mask) + " names lanes " +
                          lane_list(mask & ~exist) + " that do not exist: warp " + std::to_string(w) + " of this " +
                          std::to_string(r.n) + "-thread block has " + std::to_string(lanes) +
                          " lanes (a partial warp)");
  }
  if (width < 1 || width > 32 || (width & (width - 1)) != 0) {
    fail_in_fiber(where(file, line), std::string(op_name(op)) + ": width " + std::to_string(width) +
                          " is not a power of two in [1, 32]");
  }
  if (mask & r.exited_lanes[w]) {
    fail_in_fiber(where(file, line), std::string(op_name(op)) + " with mask " + hex(mask) + ": lanes " +
                          lane_list(mask & r.exited_lanes[w]) + " have already exited");
  }
  auto& pending = r.warps[w];
  PendingWarpOp* p = nullptr;
  for (PendingWarpOp& q : pending) {
    if ((q.mask & mask) == 0) continue;
    if (q.mask != mask || q.op != op || q.line != line || std::strcmp(q.file, file) != 0) {
      fail_in_fiber(where(file, line), "lane " + std::to_string(lane) + " calls " + op_name(op) + " with mask " + hex(mask) +
                            " here while lanes " + lane_list(q.arrived) + " wait in " + op_name(q.op) +
                            " with mask " + hex(q.mask) + " at " + where(q.file, q.line));
    }
    p = &q;
  }
  if (p == nullptr) {
    if (r.at_barrier > 0) {
      // Lanes of this warp that sit at the barrier can never join.
      unsigned at_bar = 0;
      for (unsigned l = 0; l < lanes; ++l) {
        if (r.fibers[32 * w + l].state == FiberState::AtBarrier) at_bar |= 1u << l;
      }
      if (mask & at_bar) {
        fail_in_fiber(where(file, line), std::string(op_name(op)) + " with mask " + hex(mask) + " waits for lanes " +
                              lane_list(mask & at_bar) + ", which wait at the __syncthreads() at " +
                              where(r.bar_file, r.bar_line));
      }
    }
    pending.push_back(PendingWarpOp{op, file, line, mask, 0u, width, {}, {}});
    p = &pending.back();
  }
  p->value[lane] = value;
  p->arg[lane] = arg;
  p->arrived |= 1u << lane;
  f.state = FiberState::AtWarp;
  if (p->arrived == mask) {
    const PendingWarpOp done = *p;
    pending.erase(pending.begin() + (p - pending.data()));
    unsigned votes = 0;
    for (unsigned l = 0; l < 32; ++l) {
      if ((mask >> l & 1u) && done.value[l] != 0) votes |= 1u << l;
    }
    for (unsigned l = 0; l < 32; ++l) {
      if (!(mask >> l & 1u)) continue;
      const unsigned seg = l & ~static_cast<unsigned>(done.width - 1);
      const unsigned rel = l - seg;
      unsigned src = l;
      const int a = done.arg[l];
      switch (op) {
        case WarpOp::ShflIdx: src = seg + (static_cast<unsigned>(a) & static_cast<unsigned>(done.width - 1)); break;
        case WarpOp::ShflUp: src = static_cast<int>(rel) - a < 0 ? l : l - static_cast<unsigned>(a); break;
        case WarpOp::ShflDown:
          src = rel + static_cast<unsigned>(a) >= static_cast<unsigned>(done.width) ? l : l + static_cast<unsigned>(a);
          break;
        case WarpOp::ShflXor:
          src = l ^ (static_cast<unsigned>(a) & 31u);
          if (src >= seg + static_cast<unsigned>(done.width)) src = l;
          break;
        default: break;
      }
      uint64_t res = 0;
      switch (op) {
        case WarpOp::ShflIdx:
        case WarpOp::ShflUp:
        case WarpOp::ShflDown:
        case WarpOp::ShflXor:
          if (!(mask >> src & 1u)) {
            fail_in_fiber(where(file, line), std::string(op_name(op)) + " with mask " + hex(mask) + ": lane " + std::to_string(l) +
                                  " reads lane " + std::to_string(src) +
                                  ", which is not in the mask (the value is undefined)");
          }
          res = done.value[src];
          break;
        case WarpOp::Ballot: res = votes; break;
        case WarpOp::Any: res = votes != 0; break;
        case WarpOp::All: res = votes == mask; break;
        case WarpOp::MatchAny:
          for (unsigned k = 0; k < 32; ++k) {
            if ((mask >> k & 1u) && done.value[k] == done.value[l]) res |= 1u << k;
          }
          break;
        case WarpOp::SyncWarp: break;
      }
      r.fibers[32 * w + l].result = res;
      make_ready(r, 32 * w + l);
    }
    ++g_stats.warp_collectives;
  }
  yield(f, false);
  return f.result;
}

[[noreturn]] void kernel_error(const char* file, int line, const char* what) { fail_in_fiber(where(file, line), what); }

void launch_bounds(const char* file, int line, long long max_threads, long long) {
  (void)running("__launch_bounds__");
  Run& r = *g_run;
  if (static_cast<long long>(r.n) > max_threads) {
    fail_in_fiber(where(file, line), "a block of " + std::to_string(r.n) + " threads exceeds __launch_bounds__(" +
                                         std::to_string(max_threads) + "): the launch fails on a GPU");
  }
}

void* shared_alloc(const void* tag, size_t size, size_t align, const char* file, int line, const char* name) {
  (void)running("__shared__");
  Run& r = *g_run;
  for (SharedBuffer& b : r.shared) {
    if (b.tag == tag) return b.data;
  }
  r.static_bytes += size;
  if (r.static_bytes > settings().static_smem_limit) {
    fail_in_fiber(where(file, line), std::string("__shared__ ") + name + " brings the block's static shared memory to " +
                                         std::to_string(r.static_bytes) +
                                         " bytes, past the " + std::to_string(settings().static_smem_limit) +
                                         " a kernel may declare statically (48 KiB on a GPU)");
  }
  if (r.static_bytes + r.cfg.smem > settings().smem_optin_limit) {
    fail_in_fiber(where(file, line), std::string("__shared__ ") + name + ": static plus dynamic shared memory is " +
                                         std::to_string(r.static_bytes + r.cfg.smem) + " bytes, more than the " +
                                         std::to_string(settings().smem_optin_limit) +
                                         " a block may have on every target GPU");
  }
  r.shared.push_back(make_buffer(tag, size, align, file, line, name));
  return r.shared.back().data;
}

void* dynamic_shared(const char*, int) {
  (void)running("extern __shared__");
  return g_run->dynamic.data;
}

void run_grid(const Site& site, const void* func, const Config& cfg, void (*body)(void*), void* ctx) {
  const std::lock_guard<std::mutex> lock(launch_mutex());
  if (g_run != nullptr) launch_error(site, "kernel launched from device code (dynamic parallelism is not emulated)");
  check_config(site, func, cfg);
  ++g_stats.launches;
  Run r;
  r.site = site;
  r.func = func;
  r.cfg = cfg;
  r.body = body;
  r.ctx = ctx;
  r.n = cfg.block.x * cfg.block.y * cfg.block.z;
  r.fibers.resize(r.n);
  const auto& stacks = stacks_for(r.n);
  for (unsigned t = 0; t < r.n; ++t) r.fibers[t].stack = stacks[t];
  r.warps.resize((r.n + 31) / 32);
  r.exited_lanes.resize(r.warps.size());
  r.rng = settings().seed ^ (g_stats.launches * 0xD1B54A32D192ED03ull);
  block.block_dim = cfg.block;
  block.grid_dim = cfg.grid;

  const uint64_t nblocks = 1ull * cfg.grid.x * cfg.grid.y * cfg.grid.z;
  std::vector<uint64_t> order(nblocks);
  for (uint64_t i = 0; i < nblocks; ++i) order[i] = i;
  if (settings().order == Order::Reverse) std::reverse(order.begin(), order.end());
  if (settings().order == Order::Random) {
    for (uint64_t i = nblocks; i > 1; --i) std::swap(order[i - 1], order[next_random(r.rng) % i]);
  }
  struct Reset {
    ~Reset() { g_run = nullptr; }
  } reset;
  g_run = &r;
  for (uint64_t i : order) {
    const uint3 b{static_cast<unsigned>(i % cfg.grid.x), static_cast<unsigned>((i / cfg.grid.x) % cfg.grid.y),
                  static_cast<unsigned>(i / (1ull * cfg.grid.x * cfg.grid.y))};
    run_block(r, b);
  }
}

cudaError_t set_func_attribute(const void* func, cudaFuncAttribute attr, int value) {
  if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
    if (value < 0 || static_cast<size_t>(value) > settings().smem_optin_limit) return cudaErrorInvalidValue;
    func_smem_attr()[func] = value;
  }
  return cudaSuccess;
}

void set_order(Order order, uint64_t seed) {
  settings().order = order;
  settings().seed = seed;
}
Order order() { return settings().order; }
size_t set_static_smem_limit(size_t bytes) {
  const size_t old = settings().static_smem_limit;
  settings().static_smem_limit = bytes;
  return old;
}
Stats stats() { return g_stats; }

}  // namespace cuda_emu

// ---- runtime API ---------------------------------------------------------------------------------

cudaError_t cudaGetLastError() { return cudaSuccess; }
cudaError_t cudaPeekAtLastError() { return cudaSuccess; }
const char* cudaGetErrorString(cudaError_t err) { return err == cudaSuccess ? "no error" : "emulated CUDA error"; }
const char* cudaGetErrorName(cudaError_t err) { return err == cudaSuccess ? "cudaSuccess" : "cudaErrorUnknown"; }
cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind) {
  if (n) std::memmove(dst, src, n);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind kind, cudaStream_t) {
  return cudaMemcpy(dst, src, n, kind);
}
cudaError_t cudaMemset(void* dst, int value, size_t n) {
  if (n) std::memset(dst, value, n);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* dst, int value, size_t n, cudaStream_t) { return cudaMemset(dst, value, n); }
cudaError_t cudaMalloc(void** p, size_t n) {
  *p = std::malloc(n == 0 ? 1 : n);
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
cudaError_t cudaFree(void* p) {
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
