"""The teacher's continuations: the target answers every prompt (greedy and sampled), and
its top-k next-token log-probabilities are kept at every generated position.

Batched generation with the engine (distill/engine_batch.py: many sequences in one cache,
one forward per step for all of them); prompts of similar length are batched, and every row
stops at EOS or the token limit.
Results go into shards under the cache (one .pt per batch), so an interrupted run resumes
where it stopped.
"""

from __future__ import annotations

import itertools
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mtad.distill.prompts import Prompt

TOP_K = 32
NUCLEUS_SEARCH = 1024
PAUSE_SECONDS = 600  # a gap between two shards longer than this was a pause (no batch takes so long)


@dataclass(frozen=True)
class Mode:
    """One way of answering: greedy, or sampled at a temperature with a seed."""

    name: str
    temperature: float  # 0: greedy
    top_p: float = 1.0
    seed: int = 0


MODES = (Mode("greedy", 0.0), Mode("t08", 0.8, 0.95, 1), Mode("t10", 1.0, 0.9, 2))


def prompt_ids(tokenizer: Any, p: Prompt, max_prompt: int) -> list[int]:
    if p.chat:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": p.text}], tokenize=False, add_generation_prompt=True
        )
    else:
        text = p.text
    return tokenizer(text, add_special_tokens=False)["input_ids"][-max_prompt:]


def choose(logits: torch.Tensor, mode: Mode, gen: torch.Generator) -> torch.Tensor:
    """One token per row of logits [B, V]: the argmax (greedy mode), or a draw from the
    temperature-scaled distribution cut to its top-p nucleus and renormalised."""
    if mode.temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / mode.temperature, -1)
    if mode.top_p >= 1:
        return torch.multinomial(probs, 1, generator=gen).squeeze(-1)
    # The nucleus is found among a row's top NUCLEUS_SEARCH tokens when they hold top_p of
    # its mass; only the other rows sort the whole vocabulary (a full sort of every row cost
    # more than the teacher's forward).
    sp, si = probs.topk(min(NUCLEUS_SEARCH, probs.shape[-1]), -1)
    out = _draw_nucleus(sp, si, mode.top_p, gen)
    wide = (sp.sum(-1) < mode.top_p).nonzero().squeeze(-1)
    if len(wide):
        out[wide] = _draw_nucleus(*probs[wide].sort(-1, descending=True), mode.top_p, gen)
    return out


def _draw_nucleus(sp: torch.Tensor, si: torch.Tensor, top_p: float, gen: torch.Generator) -> torch.Tensor:
    """A draw from each row's top-p prefix of (descending probabilities sp, their token ids si)."""
    keep = sp.cumsum(-1) - sp < top_p
    pick = torch.multinomial(sp * keep, 1, generator=gen)
    return si.gather(-1, pick).squeeze(-1)


def build(
    model_dir: Path,
    prompts: list[Prompt],
    out_dir: Path,
    max_new: int = 192,
    max_prompt: int = 768,
    batch_size: int = 32,
    modes: tuple[Mode, ...] = MODES,
    log: bool = True,
) -> list[Path]:
    """Answers every prompt in every mode; writes and returns the shard files (existing ones are kept)."""
    from transformers import AutoTokenizer

    import mtad_ext
    from mtad.distill import engine_batch

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = mtad_ext.load_model(str(model_dir), dtype="float32")
    eos = int(tok.eos_token_id)
    encoded = sorted(((prompt_ids(tok, p, max_prompt), p) for p in prompts), key=lambda x: len(x[0]))
    out_dir.mkdir(parents=True, exist_ok=True)
    shards = []
    jobs = [(m, s) for m in modes for s in range(0, len(encoded), batch_size)]
    t0, made = time.time(), 0
    for j, (mode, start) in enumerate(jobs):
        path = out_dir / f"{mode.name}-{start:05d}.pt"
        shards.append(path)
        if path.is_file():
            continue
        chunk = encoded[start : start + batch_size]
        gen = torch.Generator().manual_seed(mode.seed * 100003 + start)
        rows = engine_batch.generate(
            model, [x for x, _ in chunk], lambda lg, m=mode, g=gen: choose(lg, m, g), max_new, eos, TOP_K
        )
        for (ids, p), row in zip(chunk, rows, strict=True):
            row.update(prompt=torch.tensor(ids, dtype=torch.int32), name=p.name, held_out=p.held_out, mode=mode.name)
        torch.save(rows, path.with_suffix(".tmp"))
        path.with_suffix(".tmp").rename(path)
        made += sum(len(r["generated"]) for r in rows)
        if log:
            rate = made / (time.time() - t0)
            print(
                f"[teacher] {j + 1}/{len(jobs)} batches, {made} tokens, {rate:.0f} tokens/s",
                file=sys.stderr,
                flush=True,
            )
    return shards


def making_minutes(stamps: list[float]) -> float:
    """Minutes the teacher spent making shards written at these times (their mtimes), over
    several runs: each shard took the gap since the one before it; after a pause (a gap over
    PAUSE_SECONDS) and for the very first shard that start is unknown, and the median gap counts."""
    s = sorted(stamps)
    gaps = [b - a for a, b in itertools.pairwise(s)]
    if not gaps:
        return 0.0
    typical = statistics.median_high(gaps)
    return (typical + sum(g if g <= PAUSE_SECONDS else typical for g in gaps)) / 60
