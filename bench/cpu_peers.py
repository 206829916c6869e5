"""CPU decoding against the programs users would run instead, in one run.

mtad AR greedy with float32 and float16 weights, transformers' generate (float32) and,
when installed, llama.cpp (llama-cpp-python, 2 threads) from F32 and F16 GGUF files of
the same model: tokens/s over the same chat prompts and token counts, ratios, achieved
GB/s against the memory read bandwidth measured in the same run, and the cost of a
T-token forward (the verification of a T-node tree) relative to T = 1.

llama.cpp is optional: `pip install llama-cpp-python==0.3.36` builds it from the PyPI
sdist (about 15 minutes on 2 cores). The GGUF files are written from the HF folder by the
converter inside that sdist (vendor/llama.cpp/convert_hf_to_gguf.py, run with its
gguf-py/ and vendor/llama.cpp/ on PYTHONPATH); pass the unpacked sdist with --sdist or
let the script download it. Without llama_cpp the peer is skipped with a message.

    python bench/cpu_peers.py [--model DIR] [--new-tokens 128] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import torch
from decode_speed import read_bandwidth_gbs, weight_bytes

import mtad_ext

PROMPTS_FILE = Path(__file__).parent / "prompts" / "smollm2_chat.ids"
SDIST = "llama_cpp_python-0.3.36"


def load_prompts(n: int) -> list[list[int]]:
    lines = PROMPTS_FILE.read_text().split("\n")
    return [[int(x) for x in line.split()] for line in lines if line.strip()][:n]


def bench_mtad(model_dir: Path, dtype: str, prompts: list[list[int]], new_tokens: int) -> dict:
    model = mtad_ext.load_model(str(model_dir), dtype=dtype)
    dec = mtad_ext.Decoder(model, method="ar", temperature=0.0, top_k=0, top_p=1.0, capacity=1024)
    dec.start(prompts[0][:8])
    dec.step()  # warm up
    tokens, seconds = 0, 0.0
    for p in prompts:
        dec.start(p)
        dec.step()  # the first token pays for the last prompt token; time the decode after it
        t = time.perf_counter()
        while len(dec.tokens) < len(p) + new_tokens:
            dec.step()
        seconds += time.perf_counter() - t
        tokens += new_tokens - 1
    return {"tok_s": tokens / seconds}


def bench_transformers(model_dir: Path, prompts: list[list[int]], new_tokens: int) -> dict:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tokens, seconds = 0, 0.0
    with torch.no_grad():
        model.generate(torch.tensor([prompts[0]]), max_new_tokens=4, do_sample=False)
        for p in prompts:
            x = torch.tensor([p])
            t = time.perf_counter()
            model.generate(x, max_new_tokens=1, do_sample=False)
            first = time.perf_counter() - t
            t = time.perf_counter()
            model.generate(x, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
            seconds += time.perf_counter() - t - first
            tokens += new_tokens - 1
    return {"tok_s": tokens / seconds}


def sdist_dir(cache: Path, given: Path | None) -> Path:
    if given is not None:
        return given
    root = cache / "sdist" / SDIST
    if not root.exists():
        # Only this package as source; pip prepares its metadata in an isolated environment
        # (with scikit-build-core, which a machine that installed the wheel lacks).
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", "llama-cpp-python",
                        "llama-cpp-python==0.3.36", "-d", str(cache / "sdist")],
                       check=True, capture_output=True)
        with tarfile.open(cache / "sdist" / f"{SDIST}.tar.gz") as tar:
            tar.extractall(cache / "sdist", filter="data")
    return root


def gguf_file(model_dir: Path, outtype: str, cache: Path, sdist: Path) -> Path:
    out = cache / "gguf" / f"{model_dir.name}-{outtype}.gguf"
    if out.exists():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    vendor = sdist / "vendor" / "llama.cpp"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(vendor / "gguf-py"), str(vendor)]))
    subprocess.run([sys.executable, str(vendor / "convert_hf_to_gguf.py"), str(model_dir), "--outtype", outtype,
                    "--outfile", str(out)], check=True, env=env, capture_output=True)
    return out


def bench_llama_cpp(path: Path, prompts: list[list[int]], new_tokens: int) -> dict:
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=1024, n_threads=torch.get_num_threads(), verbose=False)
    tokens, seconds = 0, 0.0
    for p in prompts:
        llm.reset()
        llm.eval(p[:-1])
        t = time.perf_counter()
        n = 0
        # generate() finds p[:-1] in its cache and evaluates only the last prompt token
        # (reset=False would evaluate the whole prompt a second time after the first).
        for _ in llm.generate(p, temp=0.0):
            n += 1
            if n >= new_tokens - 1:
                break
        seconds += time.perf_counter() - t
        tokens += n
    return {"tok_s": tokens / seconds}


def forward_costs(model_dir: Path, dtype: str, sizes: list[int]) -> dict[int, float]:
    """Median time of a T-token forward after a 200-token prefix, relative to T = 1."""
    model = mtad_ext.load_model(str(model_dir), dtype=dtype)
    cache = model.new_cache(512)
    model.forward(cache, torch.arange(200))
    times = {}
    for t in sizes:
        runs = []
        for _ in range(5):
            cache.truncate(200)
            s = time.perf_counter()
            model.forward(cache, torch.arange(t), logit_rows=torch.arange(t))
            runs.append(time.perf_counter() - s)
        times[t] = sorted(runs)[len(runs) // 2]
    return {t: times[t] / times[1] for t in sizes}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="HF folder (default: SmolLM2-135M-Instruct)")
    ap.add_argument("--new-tokens", type=int, default=128, help="tokens decoded per prompt (default: 128)")
    ap.add_argument("--prompts", type=int, default=2, help="how many chat prompts of bench/prompts (default: 2)")
    ap.add_argument("--sdist", type=Path, default=None, help="unpacked llama-cpp-python 0.3.36 sdist (converter)")
    ap.add_argument("--no-transformers", action="store_true", help="skip the transformers peer")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args()
    from mtad.fetch import default_cache_dir, fetch_default

    model_dir = args.model or fetch_default(progress=not args.json)
    cache = default_cache_dir()
    prompts = load_prompts(args.prompts)
    res: dict = {"threads": torch.get_num_threads(), "read_bandwidth_gbs": read_bandwidth_gbs(),
                 "new_tokens": args.new_tokens, "prompts": len(prompts), "engines": {}}
    f32_bytes = weight_bytes(model_dir)
    bytes_per = {"float32": f32_bytes, "float16": f32_bytes // 2}
    for dtype in ("float32", "float16"):
        r = bench_mtad(model_dir, dtype, prompts, args.new_tokens)
        r["gbs"] = r["tok_s"] * bytes_per[dtype] / 1e9
        res["engines"][f"mtad {dtype}"] = r
    if not args.no_transformers:
        r = bench_transformers(model_dir, prompts, args.new_tokens)
        r["gbs"] = r["tok_s"] * f32_bytes / 1e9
        res["engines"]["transformers float32"] = r
    try:
        import llama_cpp  # noqa: F401

        sd = sdist_dir(cache, args.sdist)
        for outtype, dtype in (("f32", "float32"), ("f16", "float16")):
            r = bench_llama_cpp(gguf_file(model_dir, outtype, cache, sd), prompts, args.new_tokens)
            r["gbs"] = r["tok_s"] * bytes_per[dtype] / 1e9
            res["engines"][f"llama.cpp {outtype.upper()}"] = r
    except ImportError:
        res["llama_cpp"] = "skipped: llama_cpp is not installed (pip install llama-cpp-python==0.3.36)"
    except (subprocess.CalledProcessError, OSError) as e:
        res["llama_cpp"] = f"skipped: could not prepare the GGUF files: {e}"
    sizes = [1, 2, 4, 8, 16, 32, 64]
    res["forward_cost_vs_t1"] = {d: forward_costs(model_dir, d, sizes) for d in ("float32", "float16")}

    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    e = res["engines"]
    print(f"memory read bandwidth (same run): {res['read_bandwidth_gbs']:.1f} GB/s, threads {res['threads']}, "
          f"{res['prompts']} prompt(s) x {res['new_tokens']} tokens")
    print(f"{'engine':<24}{'tok/s':>8}{'GB/s':>8}")
    for name, r in e.items():
        print(f"{name:<24}{r['tok_s']:>8.1f}{r['gbs']:>8.1f}")
    for ours, peer in (("mtad float32", "llama.cpp F32"), ("mtad float16", "llama.cpp F16"),
                       ("mtad float32", "transformers float32")):
        if peer in e:
            print(f"{ours} / {peer}: {e[ours]['tok_s'] / e[peer]['tok_s']:.2f}x")
    if "llama_cpp" in res:
        print(f"llama.cpp: {res['llama_cpp']}")
    print("cost of a T-token forward relative to T = 1:")
    print("T        " + "".join(f"{t:>7}" for t in sizes))
    for d, row in res["forward_cost_vs_t1"].items():
        print(f"{d:<9}" + "".join(f"{row[t]:>7.2f}" for t in sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
