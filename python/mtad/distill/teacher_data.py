"""The teacher's continuations: the target answers every prompt (greedy and sampled), and
its top-k next-token log-probabilities are kept at every generated position.

Batched generation with transformers (batch-1 engines waste a CPU's compute here): prompts
of similar length are batched, left-padded, and every row stops at EOS or the token limit.
Results go into shards under the cache (one .pt per batch), so an interrupted run resumes
where it stopped.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from mtad.distill.prompts import Prompt

TOP_K = 32


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


def _choose(logits: torch.Tensor, mode: Mode, gen: torch.Generator) -> torch.Tensor:
    if mode.temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / mode.temperature, -1)
    if mode.top_p < 1:
        sp, si = probs.sort(-1, descending=True)
        keep = sp.cumsum(-1) - sp < mode.top_p
        sp = sp * keep
        probs = torch.zeros_like(probs).scatter_(-1, si, sp)
    return torch.multinomial(probs, 1, generator=gen).squeeze(-1)


@torch.inference_mode()
def generate_batch(model: Any, batch: list[list[int]], mode: Mode, max_new: int, eos: int, seed: int) -> list[dict]:
    """Left-padded batched decoding with a KV cache; returns per row the generated ids and
    the teacher's top-k (ids int32, log-probs float16) at every generated position."""
    from transformers import DynamicCache

    b = len(batch)
    width = max(len(x) for x in batch)
    ids = torch.zeros(b, width, dtype=torch.long)
    mask = torch.zeros(b, width, dtype=torch.long)
    for i, x in enumerate(batch):
        ids[i, width - len(x) :] = torch.tensor(x)
        mask[i, width - len(x) :] = 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    gen = torch.Generator().manual_seed(seed)
    cache = DynamicCache()
    steps: list[torch.Tensor] = []
    tops_i: list[torch.Tensor] = []
    tops_v: list[torch.Tensor] = []
    done = torch.zeros(b, dtype=torch.bool)
    step_ids, step_pos = ids, pos
    for _ in range(max_new):
        logits = (
            model(input_ids=step_ids, attention_mask=mask, position_ids=step_pos, past_key_values=cache, use_cache=True)
            .logits[:, -1]
            .float()
        )
        tv, ti = torch.log_softmax(logits, -1).topk(TOP_K, -1)
        nxt = _choose(logits, mode, gen)
        steps.append(nxt)
        tops_i.append(ti.to(torch.int32))
        tops_v.append(tv.to(torch.float16))
        done |= nxt == eos
        if bool(done.all()):
            break
        step_ids = nxt[:, None]
        step_pos = step_pos[:, -1:] + 1
        mask = torch.cat([mask, torch.ones(b, 1, dtype=mask.dtype)], 1)
    gen_ids = torch.stack(steps, 1)  # [b, n]
    all_i, all_v = torch.stack(tops_i, 1), torch.stack(tops_v, 1)
    rows = []
    for i in range(b):
        hits = (gen_ids[i] == eos).nonzero()
        n = int(hits[0]) + 1 if len(hits) else gen_ids.shape[1]  # up to and including EOS
        rows.append(
            {
                "generated": gen_ids[i, :n].to(torch.int32).clone(),
                "top_ids": all_i[i, :n].clone(),
                "top_logprobs": all_v[i, :n].clone(),
            }
        )
    return rows


def build(
    model_dir: Path,
    prompts: list[Prompt],
    out_dir: Path,
    max_new: int = 192,
    max_prompt: int = 768,
    batch_size: int = 48,
    modes: tuple[Mode, ...] = MODES,
    log: bool = True,
) -> list[Path]:
    """Answers every prompt in every mode; writes and returns the shard files (existing ones are kept)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
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
        rows = generate_batch(model, [x for x, _ in chunk], mode, max_new, eos, mode.seed * 100003 + start)
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
