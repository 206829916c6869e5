"""Cost of a T-token forward (a T-node tree's verification) relative to a one-token one.

Each forward follows a 200-token prefix and asks for the logits of all T tokens, as tree
verification does. The sizes run in interleaved rounds (1, 2, 4, ... then again), so a slow
phase of a shared machine falls on all of them alike; the figures are medians over rounds.
With --compare, builds of mtad_ext in other folders (e.g. a copy of the package before a
change) run in worker processes of their own, their rounds interleaved with this one's, so
that before and after are measured under the same conditions.

    python bench/forward_cost.py [--model DIR] [--dtypes float32,float16,bfloat16]
        [--sizes 1,2,4,8,16,32] [--rounds 15] [--compare NAME=DIR ...] [--threads N]
        [--clock wall|cpu] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

PREFIX = 200


def worker(model_dir: str, dtype: str, sizes: list[int], threads: int, clock: str) -> None:
    """Loads the model and answers each line on stdin with one round of timings (JSON)."""
    import time

    import torch

    import mtad_ext

    if threads > 0:
        torch.set_num_threads(threads)
    now = time.thread_time if clock == "cpu" else time.perf_counter

    model = mtad_ext.load_model(model_dir, dtype=dtype)
    cache = model.new_cache(PREFIX + max(sizes) + 8)
    model.forward(cache, torch.arange(PREFIX))
    ids = {t: torch.arange(t) for t in sizes}
    for t in sizes:  # warm every size's scratch buffers
        cache.truncate(PREFIX)
        model.forward(cache, ids[t], logit_rows=ids[t])
    print(json.dumps({"ready": mtad_ext.__file__}), flush=True)
    for _ in sys.stdin:
        # Another worker's OpenMP threads spin for a while (libgomp: ~300k pauses, ~10-20 ms)
        # after its round; let that pass, and wake this worker's own threads, off the clock.
        time.sleep(0.05)
        cache.truncate(PREFIX)
        model.forward(cache, ids[sizes[0]], logit_rows=ids[sizes[0]])
        times = {}
        for t in sizes:
            cache.truncate(PREFIX)
            s = now()
            model.forward(cache, ids[t], logit_rows=ids[t])
            times[t] = now() - s
        print(json.dumps(times), flush=True)


def start_worker(ext_dir: Path | None, model_dir: Path, dtype: str, sizes: list[int], threads: int,
                 clock: str) -> subprocess.Popen:
    env = dict(os.environ)
    if ext_dir is not None:  # its mtad_ext first on the path
        env["PYTHONPATH"] = os.pathsep.join([str(ext_dir), env.get("PYTHONPATH", "")])
    cmd = [sys.executable, __file__, "--worker", str(model_dir), dtype, ",".join(map(str, sizes)), str(threads), clock]
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    line = p.stdout.readline()
    if not line:
        raise RuntimeError(f"worker for {ext_dir or 'this build'} ({dtype}) failed to start")
    got = json.loads(line)["ready"]
    if ext_dir is not None and not Path(got).resolve().is_relative_to(ext_dir.resolve()):
        raise RuntimeError(f"worker imported {got}, not the mtad_ext in {ext_dir}")
    return p


def measure(builds: dict[str, Path | None], model_dir: Path, dtype: str, sizes: list[int], rounds: int,
            threads: int, clock: str) -> dict:
    workers = {name: start_worker(d, model_dir, dtype, sizes, threads, clock) for name, d in builds.items()}
    runs: dict[str, dict[int, list[float]]] = {name: {t: [] for t in sizes} for name in builds}
    try:
        for _ in range(rounds):
            for name, p in workers.items():
                p.stdin.write("\n")
                p.stdin.flush()
                for t, s in json.loads(p.stdout.readline()).items():
                    runs[name][int(t)].append(s)
    finally:
        for p in workers.values():
            p.stdin.close()
            p.wait()
    out = {}
    for name, r in runs.items():
        med = {t: statistics.median(v) for t, v in r.items()}
        out[name] = {"t1_ms": med[sizes[0]] * 1e3, "ratio": {t: med[t] / med[sizes[0]] for t in sizes}}
    return out


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], [int(x) for x in sys.argv[4].split(",")], int(sys.argv[5]), sys.argv[6])
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="HF folder (default: SmolLM2-135M-Instruct)")
    ap.add_argument("--dtypes", default="float32,float16,bfloat16")
    ap.add_argument("--sizes", default="1,2,4,8,16,32", help="token counts; the first is the reference")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--compare", action="append", default=[], metavar="NAME=DIR",
                    help="also time the mtad_ext package found in DIR (repeatable)")
    ap.add_argument("--threads", type=int, default=0, help="threads per forward (default: torch's)")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: the calling thread's CPU time, blind to time slices other programs take "
                         "(meaningful with --threads 1 only)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    if args.clock == "cpu" and args.threads != 1:
        ap.error("--clock cpu needs --threads 1 (the other threads' time would not be counted)")
    if args.model is None:
        from mtad.fetch import fetch_default

        args.model = fetch_default(progress=not args.json)
    sizes = [int(x) for x in args.sizes.split(",")]
    builds: dict[str, Path | None] = {"this build": None}
    for item in args.compare:
        name, sep, path = item.partition("=")
        if not sep or not (Path(path) / "mtad_ext").is_dir():
            ap.error(f"--compare {item!r}: expected NAME=DIR with DIR/mtad_ext a package")
        builds[name] = Path(path)
    res = {d: measure(builds, args.model, d, sizes, args.rounds, args.threads, args.clock)
           for d in args.dtypes.split(",")}
    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"T-token forward after a {PREFIX}-token prefix, all T logits, relative to T = {sizes[0]} "
          f"(medians of {args.rounds} interleaved rounds, {args.clock} clock, "
          f"threads {args.threads or 'default'})")
    print(f"{'dtype':<10}{'build':<14}{'T=1 ms':>8}" + "".join(f"{t:>7}" for t in sizes))
    for d, by in res.items():
        for name, r in by.items():
            print(f"{d:<10}{name:<14}{r['t1_ms']:>8.1f}" + "".join(f"{r['ratio'][t]:>7.2f}" for t in sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
