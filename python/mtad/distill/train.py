"""Training the draft on the teacher's own outputs (knowledge distillation).

Loss: cross-entropy of the student's next-token distribution against the teacher's top-k
distribution (renormalised), at every position the teacher generated; prompt positions
are context only. Examples are the prompt (its last `context` tokens) followed by the
teacher's continuation; batches are right-padded, which a causal model never attends to.
"""

from __future__ import annotations

import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mtad.distill.head_loss import sampled_head_soft_ce, tied_head_soft_ce


@dataclass
class Example:
    ids: torch.Tensor  # [L] int64: prompt tail + generated
    start: int  # index of the first position whose prediction is trained (last prompt token)
    top_ids: torch.Tensor  # [n, k] teacher's top-k at each generated position
    top_logprobs: torch.Tensor  # [n, k]
    name: str
    mode: str


def load_examples(shards: list[Path], held_out: bool, context: int) -> list[Example]:
    out = []
    for path in shards:
        for row in torch.load(path, weights_only=False):
            if bool(row["held_out"]) != held_out or len(row["generated"]) < 2:
                continue
            prompt = row["prompt"][-context:].long()
            gen = row["generated"].long()
            out.append(
                Example(
                    torch.cat([prompt, gen]),
                    len(prompt) - 1,
                    row["top_ids"].long(),
                    row["top_logprobs"].float(),
                    row["name"],
                    row["mode"],
                )
            )
    return out


def batches(examples: list[Example], max_tokens: int, rng: random.Random) -> list[list[Example]]:
    """Examples of similar length together, about max_tokens padded tokens per batch, shuffled."""
    order = sorted(examples, key=lambda e: len(e.ids))
    out: list[list[Example]] = []
    cur: list[Example] = []
    for e in order:
        if cur and (len(cur) + 1) * len(e.ids) > max_tokens:
            out.append(cur)
            cur = []
        cur.append(e)
    if cur:
        out.append(cur)
    rng.shuffle(out)
    return out


def collate(batch: list[Example]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """ids [B, L] right-padded; flat (row, position) of trained predictions; their teacher top-k."""
    width = max(len(e.ids) for e in batch)
    ids = torch.zeros(len(batch), width, dtype=torch.long)
    rows, cols, tids, tlps = [], [], [], []
    for i, e in enumerate(batch):
        ids[i, : len(e.ids)] = e.ids
        n = len(e.top_ids)
        rows.append(torch.full((n,), i))
        cols.append(torch.arange(e.start, e.start + n))
        tids.append(e.top_ids)
        tlps.append(e.top_logprobs)
    flat = torch.cat(rows) * width + torch.cat(cols)
    return ids, flat, torch.cat(tids), torch.cat(tlps)


def distill_loss(
    model: Any,
    ids: torch.Tensor,
    flat: torch.Tensor,
    tids: torch.Tensor,
    tlps: torch.Tensor,
    negatives: int = 0,
    gen: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft cross-entropy to the teacher's renormalised top-k, and the student's top-1 hits
    of the teacher's top-1 (for the log). With `negatives` > 0 the softmax is sampled
    (head_loss.sampled_head_soft_ce, drawing from `gen`); 0 is the full vocabulary."""
    hidden = model.model(input_ids=ids).last_hidden_state
    h = hidden.reshape(-1, hidden.shape[-1])[flat]
    p = torch.softmax(tlps, -1)
    if negatives > 0:
        assert gen is not None, "a sampled softmax needs a generator"
        loss, top1 = sampled_head_soft_ce(h, model.lm_head.weight, tids, p, negatives, gen)
    else:
        loss, top1 = tied_head_soft_ce(h, model.lm_head.weight, tids, p)
    return loss, (top1 == tids[:, 0]).float()


@torch.no_grad()
def agreement(model: Any, examples: list[Example], max_tokens: int) -> tuple[float, list[torch.Tensor]]:
    """Greedy top-1 agreement with the teacher on its greedy continuations; also the per-example
    hit vectors (for the speculative-decoding estimate), in the order of the greedy examples."""
    model.eval()
    greedy = [e for e in examples if e.mode == "greedy"]
    found: dict[int, torch.Tensor] = {}
    for batch in batches(greedy, max_tokens, random.Random(0)):
        ids, flat, tids, tlps = collate(batch)
        _, hits = distill_loss(model, ids, flat, tids, tlps)
        found.update(zip(map(id, batch), hits.split([len(e.top_ids) for e in batch]), strict=True))
    model.train()
    per_example = [found[id(e)] for e in greedy]
    return hit_rate(per_example), per_example


def hit_rate(hits: list[torch.Tensor]) -> float:
    """The fraction of positions hit, over all the per-example hit vectors."""
    total = sum(len(h) for h in hits)
    return float(sum(h.sum() for h in hits) / max(total, 1))


def tokens_per_forward(hits: list[torch.Tensor], gamma: int) -> float:
    """Greedy speculative decoding along the teacher's greedy text: a block accepts the draft's
    run of agreeing tokens (at most gamma) and adds the target's own token. Exact for greedy
    decoding when draft and target see the same prefix, which they do along accepted text."""
    tokens = forwards = 0
    for h in hits:
        i, n = 0, len(h)
        while i < n:
            run = 0
            while run < gamma and i + run < n and bool(h[i + run]):
                run += 1
            step = min(run + 1, n - i)
            tokens += step
            forwards += 1
            i += step
    return tokens / max(forwards, 1)


def train(
    model: Any,
    train_set: list[Example],
    held_out: list[Example],
    *,
    epochs: int,
    minutes: float,
    max_tokens: int,
    lr: float,
    seed: int,
    negatives: int = 0,
    log: bool = True,
) -> dict[str, Any]:
    """AdamW with warm-up and cosine decay over min(epochs, what fits in `minutes`); the loss's
    softmax sampled with `negatives` drawn tokens per batch when > 0 (evaluation: full).
    Held-out agreement is measured after every epoch and at the end; the model is left with
    the weights that scored best (the record says which step that was)."""
    torch.manual_seed(seed)
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    per_epoch = len(batches(train_set, max_tokens, rng))
    total = epochs * per_epoch
    warmup = min(100, total // 10 + 1)
    t0 = time.time()
    step = 0
    history: list[dict[str, Any]] = []
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None  # agreement, step, weights
    model.train()
    while step < total:
        for batch in batches(train_set, max_tokens, rng):
            if step >= total:
                break
            frac = step / max(total, 1)
            scale = (step + 1) / warmup if step < warmup else 0.1 + 0.45 * (1 + math.cos(math.pi * frac))
            for g in opt.param_groups:
                g["lr"] = lr * scale
            loss, hits = distill_loss(model, *collate(batch), negatives, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
            elapsed = time.time() - t0
            if step == 20:  # fit the schedule into the time budget
                total = min(total, max(step + 1, int(minutes * 60 / (elapsed / step))))
            if log and (step % 25 == 0 or step == total):
                print(
                    f"[train] step {step}/{total} loss {loss.item():.3f} top1 {hits.mean().item():.3f} "
                    f"{elapsed / 60:.1f} min",
                    file=sys.stderr,
                    flush=True,
                )
            if step % per_epoch == 0 or step == total:
                agree, hv = agreement(model, held_out, max_tokens)
                history.append(
                    {
                        "step": step,
                        "minutes": round(elapsed / 60, 1),
                        "held_out_agreement": agree,
                        "tokens_per_forward_gamma4": tokens_per_forward(hv, 4),
                    }
                )
                if log:
                    print(f"[eval] {history[-1]}", file=sys.stderr, flush=True)
                if best is None or agree > best[0]:
                    best = (agree, step, {k: v.detach().clone() for k, v in model.state_dict().items()})
    kept = step
    if best is not None and best[1] != step:
        model.load_state_dict(best[2])
        kept = best[1]
        if log:
            print(f"[train] kept the weights of step {kept} (best held-out agreement)", file=sys.stderr)
    return {"steps": step, "kept_step": kept, "minutes": round((time.time() - t0) / 60, 1), "history": history}
