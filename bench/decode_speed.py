"""Prefill and decode speed of mtad against transformers on one model, in one run.

Prints tokens/s for both (batch 1, greedy), their ratio, and mtad's achieved weight
bandwidth next to the memory read bandwidth measured in the same run, so figures from
noisy machines stay comparable. Default: SmolLM2-135M-Instruct in float32.

    python bench/decode_speed.py [--model DIR] [--new-tokens 128] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

import mtad_ext

PROMPT = "Explain, step by step, how a bicycle's gears make it easier to ride up a hill."


def read_bandwidth_gbs(mbytes: int = 512, repeats: int = 5) -> float:
    """Streaming read bandwidth: the rate a reduction over a large array reads memory."""
    a = torch.ones(mbytes * (1 << 20) // 4)
    a.sum()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        a.sum()
        times.append(time.perf_counter() - t)
    return a.numel() * 4 / statistics.median(times) / 1e9


def weight_bytes(model_dir: Path) -> int:
    """Bytes of float32 weights one decode step reads (each stored tensor once)."""
    from safetensors import safe_open

    total = 0
    for f in sorted(model_dir.glob("*.safetensors")):
        with safe_open(f, "pt") as h:
            for name in h.keys():
                total += 4 * math.prod(h.get_slice(name).get_shape())
    return total


def prompt_ids(model_dir: Path) -> list[int]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    text = f"<|im_start|>user\n{PROMPT}<|im_end|>\n<|im_start|>assistant\n"
    return tok.encode(text).ids


def bench_mtad(model_dir: Path, ids: list[int], new_tokens: int, prefill_ids: list[int]) -> dict:
    model = mtad_ext.load_model(str(model_dir))
    # Prefill speed on a longer prompt; decode speed after the chat prompt.
    cache = model.new_cache(len(prefill_ids) + 1)
    model.forward(cache, torch.tensor(prefill_ids[:16]))  # warm up
    cache.truncate(0)
    t = time.perf_counter()
    model.forward(cache, torch.tensor(prefill_ids), logit_rows=torch.tensor([len(prefill_ids) - 1]))
    prefill_s = time.perf_counter() - t

    cache = model.new_cache(len(ids) + new_tokens)
    logits = model.forward(cache, torch.tensor(ids), logit_rows=torch.tensor([len(ids) - 1]))
    out = [int(logits[-1].argmax())]
    t = time.perf_counter()
    while len(out) < new_tokens:  # EOS is ignored so that every run decodes the same count
        logits = model.forward(cache, torch.tensor(out[-1:]))
        out.append(int(logits[-1].argmax()))
    decode_s = time.perf_counter() - t
    return {
        "prefill_tok_s": len(prefill_ids) / prefill_s,
        "decode_tok_s": (new_tokens - 1) / decode_s,
        "tokens": out,
    }


def bench_transformers(model_dir: Path, ids: list[int], new_tokens: int, prefill_ids: list[int]) -> dict:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        model(torch.tensor([prefill_ids[:16]]))
        t = time.perf_counter()
        model(torch.tensor([prefill_ids]))
        prefill_s = time.perf_counter() - t
        x = torch.tensor([ids])
        t = time.perf_counter()
        model(x)
        first_s = time.perf_counter() - t
        t = time.perf_counter()
        out = model.generate(x, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
        total_s = time.perf_counter() - t
    # generate's time minus its own prompt pass leaves the (new_tokens - 1) decode steps.
    return {
        "prefill_tok_s": len(prefill_ids) / prefill_s,
        "decode_tok_s": (new_tokens - 1) / max(total_s - first_s, 1e-9),
        "tokens": out[0, len(ids):].tolist(),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None,
                    help="model folder (default: SmolLM2-135M-Instruct, fetched if missing)")
    ap.add_argument("--new-tokens", type=int, default=128, help="tokens to decode (default: 128)")
    ap.add_argument("--prefill-tokens", type=int, default=256, help="prompt length for prefill speed (default: 256)")
    ap.add_argument("--no-transformers", action="store_true", help="skip the transformers peer")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args()

    if args.model is None:
        from mtad.fetch import fetch_default

        args.model = fetch_default(progress=not args.json)
    ids = prompt_ids(args.model)
    prefill_ids = (ids * (args.prefill_tokens // len(ids) + 1))[: args.prefill_tokens]

    bw = read_bandwidth_gbs()
    wbytes = weight_bytes(args.model)
    res = {"model": str(args.model), "threads": torch.get_num_threads(), "read_bandwidth_gbs": bw,
           "weight_bytes": wbytes, "new_tokens": args.new_tokens, "prefill_tokens": len(prefill_ids)}
    res["mtad"] = bench_mtad(args.model, ids, args.new_tokens, prefill_ids)
    res["mtad"]["achieved_gbs"] = res["mtad"]["decode_tok_s"] * wbytes / 1e9
    if not args.no_transformers:
        res["transformers"] = bench_transformers(args.model, ids, args.new_tokens, prefill_ids)
        res["decode_ratio"] = res["mtad"]["decode_tok_s"] / res["transformers"]["decode_tok_s"]
        res["prefill_ratio"] = res["mtad"]["prefill_tok_s"] / res["transformers"]["prefill_tok_s"]
        res["same_tokens"] = res["mtad"]["tokens"] == res["transformers"]["tokens"]
    for r in ("mtad", "transformers"):
        if r in res:
            res[r].pop("tokens")

    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    print(f"model {args.model}  threads {res['threads']}  weights {wbytes / 1e6:.0f} MB")
    print(f"memory read bandwidth (same run): {bw:.1f} GB/s -> roofline {bw * 1e9 / wbytes:.1f} tokens/s")
    print(f"{'engine':<14}{'prefill tok/s':>15}{'decode tok/s':>14}{'GB/s':>8}")
    for r in ("mtad", "transformers"):
        if r in res:
            gbs = res[r]["decode_tok_s"] * wbytes / 1e9
            print(f"{r:<14}{res[r]['prefill_tok_s']:>15.1f}{res[r]['decode_tok_s']:>14.1f}{gbs:>8.1f}")
    if "decode_ratio" in res:
        print(f"mtad / transformers: decode {res['decode_ratio']:.2f}x, prefill {res['prefill_ratio']:.2f}x, "
              f"same greedy tokens: {res['same_tokens']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
