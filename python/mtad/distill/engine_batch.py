"""Batched teacher decoding with the engine: several independent sequences in one KV cache.

The engine's forward takes T new tokens with their own positions and a [T, M] mask over the
last M cache slots. Giving every sequence its own slots (a slot -> sequence map) and a mask
that lets each new token see only its own sequence turns one T-token forward into one
decode step of T independent sequences. On a CPU a T-token forward costs far less than T
one-token forwards (the weights are read once), so this is the fast way to have the target
answer many prompts; each sequence's logits are those it would get decoded alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

# picks the next token of every row from its float32 logits [rows, vocab]
Chooser = Callable[[torch.Tensor], torch.Tensor]


def _own_slots(owner: torch.Tensor, rows: torch.Tensor, length: int, new: int) -> torch.Tensor:
    """[len(rows) * new, length + len(rows) * new] mask: each new token sees its sequence's
    cached slots, and among the new ones its own row's earlier tokens and itself."""
    mask = torch.zeros(len(rows) * new, length + len(rows) * new, dtype=torch.bool)
    own = owner[:length][None, :] == rows[:, None]  # [rows, length]
    mask[:, :length] = own.repeat_interleave(new, 0)
    tri = torch.ones(new, new, dtype=torch.bool).tril()
    for i in range(len(rows)):
        block = slice(length + i * new, length + (i + 1) * new)
        mask[i * new : (i + 1) * new, block] = tri
    return mask


@torch.inference_mode()
def generate(
    model: Any,
    prompts: list[list[int]],
    choose: Chooser,
    max_new: int,
    eos: int,
    top_k: int,
) -> list[dict[str, torch.Tensor]]:
    """Decodes every prompt until EOS (kept) or max_new tokens. Returns per prompt the
    generated ids (int32) and the teacher's top-k next-token ids (int32) and log-probabilities
    (float16) at every generated position."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("generate: every prompt needs at least one token")
    b = len(prompts)
    cache = model.new_cache(sum(len(p) for p in prompts) + b * max_new)
    owner = torch.full((cache.capacity,), -1, dtype=torch.long)
    last = []
    for i, p in enumerate(prompts):  # prefill one prompt at a time (its own causal block)
        length = cache.length
        mask = _own_slots(owner, torch.tensor([i]), length, len(p))
        owner[length : length + len(p)] = i
        last.append(
            model.forward(
                cache, torch.tensor(p), positions=torch.arange(len(p)), tree_mask=mask,
                logit_rows=torch.tensor([len(p) - 1]),
            )[0]
        )
    logits = torch.stack(last)
    alive = torch.arange(b)
    pos = torch.tensor([len(p) for p in prompts])
    out_ids: list[list[int]] = [[] for _ in range(b)]
    out_ti: list[list[torch.Tensor]] = [[] for _ in range(b)]
    out_tv: list[list[torch.Tensor]] = [[] for _ in range(b)]
    for _ in range(max_new):
        tv, ti = torch.log_softmax(logits, -1).topk(top_k, -1)
        nxt = choose(logits)
        for j, row in enumerate(alive.tolist()):
            out_ids[row].append(int(nxt[j]))
            out_ti[row].append(ti[j].to(torch.int32))
            out_tv[row].append(tv[j].to(torch.float16))
        keep = (nxt != eos) & (torch.tensor([len(out_ids[r]) for r in alive.tolist()]) < max_new)
        if not bool(keep.any()):
            break
        alive, nxt = alive[keep], nxt[keep]
        length = cache.length
        mask = _own_slots(owner, alive, length, 1)
        owner[length : length + len(alive)] = alive
        logits = model.forward(cache, nxt, positions=pos[alive], tree_mask=mask)
        pos[alive] += 1
    return [
        {
            "generated": torch.tensor(out_ids[i], dtype=torch.int32),
            "top_ids": torch.stack(out_ti[i]),
            "top_logprobs": torch.stack(out_tv[i]),
        }
        for i in range(b)
    ]
