"""Counts the per-forward framework work of mtad's CPU forward, independent of timing.

For one decode forward (after a prefill) at several T (tokens per forward) it prints:
  - aten ops: operators the forward dispatched through ATen, all and top-level only (the
    profiler records the extension's own C++ at:: calls: they go through the dispatcher);
  - regions: OpenMP parallel regions started (fork/joins, GOMP_parallel calls);
  - barriers: explicit OpenMP barriers passed per thread (GOMP_barrier calls / threads).
Regions and barriers are counted by a tiny LD_PRELOAD shim around libgomp, compiled with
`cc` on the fly; the script re-runs itself under it. On a busy machine these counts, not
wall-clock figures, show how much synchronisation a forward costs.

    python bench/forward_overhead.py [--model DIR] [--dtype float32] [--T 1,16,64] [--json]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
static atomic_long n_parallel, n_barrier;
typedef void (*par_t)(void (*)(void*), void*, unsigned, unsigned);
typedef void (*bar_t)(void);
void GOMP_parallel(void (*fn)(void*), void* data, unsigned nt, unsigned flags) {
  static par_t real; if (!real) real = (par_t)dlsym(RTLD_NEXT, "GOMP_parallel");
  atomic_fetch_add(&n_parallel, 1); real(fn, data, nt, flags);
}
void GOMP_barrier(void) {
  static bar_t real; if (!real) real = (bar_t)dlsym(RTLD_NEXT, "GOMP_barrier");
  atomic_fetch_add(&n_barrier, 1); real();
}
void gomp_counts(long* out) { out[0] = n_parallel; out[1] = n_barrier; }
void gomp_reset(void) { n_parallel = 0; n_barrier = 0; }
"""
ENV_FLAG = "MTAD_GOMP_COUNT_SHIM"


def reexec_under_shim() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="mtad-gomp-"))
    (tmp / "shim.c").write_text(SHIM)
    lib = tmp / "libgompcount.so"
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", str(tmp / "shim.c"), "-o", str(lib), "-ldl"], check=True)
    env = dict(os.environ, LD_PRELOAD=str(lib), **{ENV_FLAG: str(lib)})
    os.execve(sys.executable, [sys.executable, *sys.argv], env)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model folder (default: SmolLM2-135M-Instruct)")
    ap.add_argument("--dtype", default="float32", help="weight storage on the CPU: float32, float16, bfloat16")
    ap.add_argument("--T", default="1,16,64", help="tokens per forward, comma-separated")
    ap.add_argument("--prefix", type=int, default=100, help="tokens cached before the measured forward")
    ap.add_argument("--repeats", type=int, default=5, help="forwards timed per T (noisy machines: a sanity check)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if ENV_FLAG not in os.environ:
        reexec_under_shim()
    shim = ctypes.CDLL(os.environ[ENV_FLAG])

    import torch
    from torch.profiler import ProfilerActivity, profile

    import mtad_ext

    model_dir = args.model
    if model_dir is None:
        from mtad.fetch import fetch_default

        model_dir = str(fetch_default(progress=False))
    model = mtad_ext.load_model(model_dir, dtype=args.dtype)
    layers, vocab = model.config["num_layers"], model.config["vocab_size"]
    threads = torch.get_num_threads()
    counts = (ctypes.c_long * 2)()
    g = torch.Generator().manual_seed(0)
    rows = []
    for T in (int(t) for t in args.T.split(",")):
        cache = model.new_cache(args.prefix + T * (args.repeats + 3))
        model.forward(cache, torch.randint(0, vocab, (args.prefix,), generator=g))
        tokens = torch.randint(0, vocab, (T,), generator=g)
        model.forward(cache, tokens)  # warm: scratch buffers sized for this T
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model.forward(cache, tokens)
        events = [e for e in prof.events() if e.name.startswith("aten::")]
        ops = Counter(e.name for e in events)
        top = Counter(e.name for e in events if e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::"))
        shim.gomp_reset()
        model.forward(cache, tokens)
        shim.gomp_counts(counts)
        regions, barriers = counts[0], counts[1] / max(1, threads)
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            model.forward(cache, tokens)
            times.append(time.perf_counter() - t0)
        rows.append(dict(T=T, aten_ops=sum(ops.values()), aten_ops_per_layer=sum(ops.values()) / layers,
                         aten_top_level=sum(top.values()),
                         regions=regions, regions_per_layer=regions / layers, barriers=barriers,
                         barriers_per_layer=barriers / layers, ms_min=1e3 * min(times),
                         top_ops=dict(top.most_common())))
    if args.json:
        print(json.dumps(dict(model=model_dir, dtype=args.dtype, threads=threads, layers=layers, rows=rows), indent=1))
        return
    print(f"{model_dir} ({args.dtype} weights, {layers} layers, {threads} threads); ms: min of "
          f"{args.repeats}, machine noise included")
    cols = [("T", "T", "d"), ("aten ops", "aten_ops", "d"), ("/layer", "aten_ops_per_layer", ".2f"),
            ("top-level", "aten_top_level", "d"), ("regions", "regions", "d"), ("/layer", "regions_per_layer", ".2f"),
            ("barriers", "barriers", ".0f"), ("/layer", "barriers_per_layer", ".2f"), ("ms", "ms_min", ".2f")]
    print(" ".join(f"{title:>9}" for title, _, _ in cols))
    for r in rows:
        print(" ".join(f"{r[key]:>9{fmt}}" for _, key, fmt in cols))
    for r in rows:
        print(f"T={r['T']} top-level ops:", ", ".join(f"{k[6:]} {v}" for k, v in r["top_ops"].items()))


if __name__ == "__main__":
    main()
