"""Every decoding method on SmolLM2 on the GPU, its greedy tokens held to the CPU's (part of
tools/gpu_check.sh; runs on the CPU alone with --devices cpu,cpu as a dry run).

For each method (ar, sps, mtad, mtad-tree, aded) and each prompt of bench/prompts/smollm2_chat.ids
it decodes --new-tokens greedy tokens on each of the two devices (float32 weights on both), and
reports whether the tokens are equal (else the first index where they differ), tokens per
second, and the host reads (GPU synchronisations) per step. Greedy speculative methods must
also equal greedy AR on the same device. Writes JSON (--json) and prints a Markdown table.
Exit status 1 when a method's tokens differ between the devices beyond --allow-diverge
prompts, or a greedy method differs from AR on the same device.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
METHODS = ["ar", "sps", "mtad", "mtad-tree", "aded"]


def first_difference(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def load_prompts(path: Path, count: int) -> list[list[int]]:
    lines = [ln.split() for ln in path.read_text().splitlines() if ln.strip()]
    return [[int(t) for t in ln] for ln in lines[:count]]


def decode(mtad_ext, target, draft, method: str, prompt: list[int], n: int, gamma: int, width: int) -> dict:
    kw = dict(temperature=0.0, top_k=0, top_p=1.0, seed=0, capacity=len(prompt) + n + 8)
    if method in ("ar", "aded"):
        dec = mtad_ext.Decoder(target, method=method, **kw)
    else:
        dec = mtad_ext.Decoder(target, draft, method=method, gamma=gamma, width=width, **kw)
    if method == "aded":
        table = mtad_ext.TrigramTable(target.config["vocab_size"])
        table.add_sequence(prompt)
        table.finalize()
        dec.set_trigram_table(table)
    dec.start(prompt)
    t0 = time.perf_counter()
    while len(dec.tokens) < len(prompt) + n:
        dec.step()
    seconds = time.perf_counter() - t0
    total = dec.total_stats
    steps = max(1, total["target_forwards"])
    out = dec.tokens[len(prompt):len(prompt) + n]
    return {"tokens": out, "seconds": seconds, "tokens_per_s": len(out) / seconds if seconds else 0.0,
            "host_reads_per_step": total.get("host_reads", 0) / steps, "tokens_per_forward": total["emitted"] / steps}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", help="target model folder (default: mtad's SmolLM2, fetched once)")
    ap.add_argument("--draft", default=str(ROOT / "drafts" / "smollm2-135m-draft"))
    ap.add_argument("--prompts", default=str(ROOT / "bench" / "prompts" / "smollm2_chat.ids"))
    ap.add_argument("--count", type=int, default=4, help="prompts to run (default 4)")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--gamma", type=int, default=4)
    ap.add_argument("--width", type=int, default=4)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--devices", default="cpu,cuda", help="reference device, device under test")
    ap.add_argument("--allow-diverge", type=int, default=0,
                    help="prompts per method whose devices may differ (float sums differ; a near tie "
                         "can flip a greedy token); default 0")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)

    import torch  # noqa: F401  (before mtad_ext)

    import mtad_ext

    if args.target is None:
        sys.path.insert(0, str(ROOT / "python"))
        from mtad.fetch import fetch_default

        args.target = str(fetch_default(progress=False))
    ref_dev, test_dev = args.devices.split(",")
    prompts = load_prompts(Path(args.prompts), args.count)
    methods = [m for m in args.methods.split(",") if m]
    models = {}
    for dev in (ref_dev, test_dev):
        if dev not in models:
            models[dev] = (mtad_ext.load_model(args.target, device=dev, dtype="float32"),
                           mtad_ext.load_model(args.draft, device=dev, dtype="float32"))

    rows, failures = [], []
    ar_tokens: dict[tuple[str, int], list[int]] = {}
    for method in methods:
        diverged = 0
        for i, prompt in enumerate(prompts):
            res = {}
            for dev in (ref_dev, test_dev):
                target, draft = models[dev]
                res[dev] = decode(mtad_ext, target, draft, method, prompt, args.new_tokens, args.gamma, args.width)
                if method == "ar":
                    ar_tokens[(dev, i)] = res[dev]["tokens"]
                elif (dev, i) in ar_tokens and res[dev]["tokens"] != ar_tokens[(dev, i)]:
                    at = first_difference(res[dev]["tokens"], ar_tokens[(dev, i)])
                    failures.append(f"{method} on {dev}, prompt {i}: greedy output differs from AR's at token {at}")
            diff = first_difference(res[ref_dev]["tokens"], res[test_dev]["tokens"])
            diverged += diff is not None
            rows.append({"method": method, "prompt": i, "equal": diff is None, "first_difference": diff,
                         **{f"{dev}_{k}": v for dev in (ref_dev, test_dev) for k, v in res[dev].items()
                            if k != "tokens"}})
        if diverged > args.allow_diverge:
            failures.append(f"{method}: {diverged} of {len(prompts)} prompts differ between {ref_dev} and {test_dev}")

    print(f"| method | prompt | {ref_dev} = {test_dev} | {test_dev} tokens/s | {ref_dev} tokens/s "
          f"| {test_dev} host reads/step | tokens/forward |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        same = "yes" if r["equal"] else f"no (token {r['first_difference']})"
        print(f"| {r['method']} | {r['prompt']} | {same} | {r[f'{test_dev}_tokens_per_s']:.1f} "
              f"| {r[f'{ref_dev}_tokens_per_s']:.1f} | {r[f'{test_dev}_host_reads_per_step']:.2f} "
              f"| {r[f'{test_dev}_tokens_per_forward']:.2f} |")
    for f in failures:
        print(f"FAIL {f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rows": rows, "failures": failures}, indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
