"""Measuring a draft: top-1 agreement with the teacher along its held-out greedy answers (all,
chat prompts, each source), and with the engine greedy speculative decoding at gamma = 4 (and
other draft lengths) on held-out prompts (tokens per target forward, output equal to greedy AR,
speed over greedy AR) and the cost of one draft decode step relative to one target step on
this CPU."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

GREEDY = dict(temperature=0.0, top_k=0, top_p=1.0)


def _decode(decoder: Any, prompt: list[int], n: int, eos: int | None = None) -> tuple[list[int], float]:
    """Up to n new tokens, ending after the first EOS (as a user's generation would)."""
    decoder.start(prompt)
    t0 = time.perf_counter()
    new: list[int] = []
    while len(new) < n and (eos is None or eos not in new):
        decoder.step()
        new = decoder.tokens[len(prompt) :]
    if eos is not None and eos in new:
        new = new[: new.index(eos) + 1]
    return new[:n], time.perf_counter() - t0


def step_cost_ratio(target: Any, draft: Any, prompt: list[int], n: int = 64) -> float:
    """Seconds per AR decode step of the draft over those of the target (best of 3)."""
    import mtad_ext

    def per_step(model: Any) -> float:
        best = float("inf")
        for _ in range(3):
            _, dt = _decode(
                mtad_ext.Decoder(model, None, method="ar", capacity=len(prompt) + n + 8, **GREEDY), prompt, n
            )
            best = min(best, dt / n)
        return best

    return per_step(draft) / per_step(target)


def speculative(
    target_dir: Path,
    draft_dirs: Sequence[Path],
    prompts: list[list[int]],
    new_tokens: int = 128,
    gammas: Sequence[int] = (4,),
    eos: int | None = None,
) -> list[dict[str, Any]]:
    """Greedy SpS with the engine against greedy AR on the same prompts (each answer ends at
    EOS or after new_tokens), for each draft at each draft length in gammas: per draft, the
    first gamma's figures at the top level, the others' under "other_gammas". Each prompt runs
    AR and then every draft at every gamma in turn, so that a slow spell of a shared machine
    falls on all of them alike (drafts compared in one run have comparable speeds)."""
    import mtad_ext

    target = mtad_ext.load_model(str(target_dir))
    drafts = [mtad_ext.load_model(str(d), dtype="float16") for d in draft_dirs]
    cap = max(len(p) for p in prompts) + new_tokens + max(gammas) + 8
    runs = [(d, g) for d in range(len(drafts)) for g in gammas]
    tokens = dict.fromkeys(runs, 0)
    forwards = dict.fromkeys(runs, 0)
    same = dict.fromkeys(runs, 0)
    seconds = dict.fromkeys(runs, 0.0)
    t_ar = 0.0
    for p in prompts:
        ar, dt_ar = _decode(mtad_ext.Decoder(target, None, method="ar", capacity=cap, **GREEDY), p, new_tokens, eos)
        t_ar += dt_ar
        for d, g in runs:
            dec = mtad_ext.Decoder(target, drafts[d], method="sps", gamma=g, capacity=cap, **GREEDY)
            sps, dt_sps = _decode(dec, p, new_tokens, eos)
            tokens[d, g] += len(sps)
            forwards[d, g] += int(dec.total_stats["target_forwards"])
            same[d, g] += sps == ar
            seconds[d, g] += dt_sps

    def figures(d: int, g: int) -> dict[str, Any]:
        return {
            "tokens_per_target_forward": round(tokens[d, g] / max(forwards[d, g], 1), 3),
            "outputs_equal_to_greedy_ar": f"{same[d, g]}/{len(prompts)}",
            "sps_over_ar_speed": round(t_ar / seconds[d, g], 3),
        }

    results = []
    for d, draft in enumerate(drafts):
        out: dict[str, Any] = {
            "prompts": len(prompts), "new_tokens": new_tokens, "gamma": gammas[0], **figures(d, gammas[0])
        }
        if len(gammas) > 1:
            out["other_gammas"] = {str(g): figures(d, g) for g in gammas[1:]}
        out["draft_step_cost_over_target"] = round(step_cost_ratio(target, draft, prompts[0]), 3)
        results.append(out)
    return results


def teacher_agreement(
    model: Any,
    held_out: list[Any],
    chat_sources: set[str],
    max_tokens: int,
    groups: dict[str, set[str]] | None = None,
) -> dict[str, Any]:
    """Greedy top-1 agreement and the greedy SpS (gamma 4) tokens per forward it implies, along
    the teacher's held-out greedy answers: all of them, chat prompts only, per source, and per
    group of prompt names (`groups`, e.g. prompt_sets.names_by_set: a set no earlier draft was
    trained on measures a draft on text new to both)."""
    from mtad.distill import train
    from mtad.distill.prompts import source_of

    greedy = [e for e in held_out if e.mode == "greedy"]
    _, hits = train.agreement(model, held_out, max_tokens)  # one pass; subsets are taken from it
    by_example = list(zip(greedy, hits, strict=True))

    def measure(keep: Any) -> tuple[float, float]:
        h = [x for e, x in by_example if keep(e)]
        return round(train.hit_rate(h), 3), round(train.tokens_per_forward(h, 4), 3)

    agree, tpf = measure(lambda e: True)
    chat_agree, chat_tpf = measure(lambda e: source_of(e) in chat_sources)
    out: dict[str, Any] = {
        "agreement": agree,
        "tokens_per_forward": tpf,
        "chat": {"agreement": chat_agree, "tokens_per_forward": chat_tpf},
        "by_source": {
            src: measure(lambda e, src=src: source_of(e) == src)[0] for src in sorted({source_of(e) for e in greedy})
        },
    }
    if groups is not None:
        out["by_set"] = {
            label: {
                "answers": sum(e.name in names for e in greedy),
                "agreement": measure(lambda e, n=names: e.name in n)[0],
            }
            for label, names in groups.items()
        }
    return out


def chat_sources(items: list[Any]) -> set[str]:
    """The sources of the chat prompts among `items`."""
    from mtad.distill.prompts import source_of

    return {source_of(p) for p in items if p.chat}


def held_out_chat(tokenizer: Any, items: list[Any], count: int) -> list[list[int]]:
    """Token ids of `count` held-out chat prompts among `items`, taken from each source in turn."""
    from mtad.distill import prompts, teacher_data

    chosen = prompts.round_robin([p for p in items if p.held_out and p.chat])[:count]
    return [teacher_data.prompt_ids(tokenizer, p, 512) for p in chosen]


def _by_draft(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One draft's figures as they are; several under "by_draft", keyed by folder."""
    return next(iter(results.values())) if len(results) == 1 else {"by_draft": results}


def main(argv: list[str] | None = None) -> int:
    """Measures draft folders against the default target (or --teacher) on held-out prompts."""
    import argparse
    import json

    from transformers import AutoTokenizer

    from mtad.distill import arg_types, prompt_sets
    from mtad.fetch import fetch_default

    ap = argparse.ArgumentParser(prog="python -m mtad.distill.evaluate", description=main.__doc__)
    ap.add_argument(
        "drafts",
        type=Path,
        nargs="+",
        help="draft folder; with several (say a new version and the one before), each is measured "
        "on the same held-out answers and prompts in one run, the engine's runs interleaved prompt "
        "by prompt so that their speeds compare",
    )
    ap.add_argument("--teacher", type=Path, default=None, help="target folder (default: SmolLM2-135M-Instruct)")
    ap.add_argument("--prompts", type=arg_types.positive, default=24, help="held-out chat prompts (default 24)")
    prompt_sets.add_options(ap)  # as given to python -m mtad.distill: the same sets and held-out answers
    ap.add_argument(
        "--gammas",
        default="4,1,2,3",
        help="draft lengths to run greedy SpS at, comma-separated; the first is reported at the top "
        "(default 4,1,2,3: the issue's gamma first, then the rest, to see which is fastest here)",
    )
    args = ap.parse_args(argv)
    try:
        gammas = [int(g) for g in args.gammas.split(",")]
    except ValueError:
        ap.error(f"--gammas must be comma-separated integers, got {args.gammas!r}")
    if not gammas or min(gammas) < 1 or len(set(gammas)) != len(gammas):
        ap.error(f"--gammas must be distinct integers >= 1, got {args.gammas!r}")
    labels = [str(d) for d in args.drafts]
    if len(set(labels)) != len(labels):
        ap.error(f"each draft folder once, got {' '.join(labels)}")
    for d in args.drafts:
        if not (d / "config.json").is_file():
            ap.error(f"{d} is not a model folder (no config.json)")
    teacher_dir = args.teacher or fetch_default()
    tok = AutoTokenizer.from_pretrained(teacher_dir)
    import torch
    from transformers import AutoModelForCausalLM

    from mtad.distill import train

    sets = prompt_sets.from_args(teacher_dir, args)
    items = [p for s in sets for p in s.prompts]
    shards = prompt_sets.shards_of(sets, ["greedy"])
    if shards:  # the teacher's answers cached by an earlier python -m mtad.distill
        held_out = train.load_examples(shards, True, args.context)
        chats, groups = chat_sources(items), prompt_sets.names_by_set(sets)
        agreement = {}
        for label, draft in zip(labels, args.drafts, strict=True):
            model = AutoModelForCausalLM.from_pretrained(draft, dtype=torch.float32)
            agreement[label] = teacher_agreement(model, held_out, chats, 4096, groups)
        print(json.dumps({"held-out greedy teacher answers": len(held_out), **_by_draft(agreement)}, indent=1),
              flush=True)
    else:
        print("no cached teacher answers: agreement not measured (python -m mtad.distill makes them)")
    ids = held_out_chat(tok, items, args.prompts)
    engine = speculative(teacher_dir, args.drafts, ids, gammas=gammas, eos=tok.eos_token_id)
    print(json.dumps(_by_draft(dict(zip(labels, engine, strict=True))), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
