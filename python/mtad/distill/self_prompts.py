"""User requests written by the target itself: many more, and more varied, chat prompts than
the offline sets hold.

The target samples a user turn after its chat template's user header, each one started with
one of a few opening words (so that requests, questions and tasks all occur), at temperature
1 and top-p 0.95; a request counts when the target ends the turn itself. The texts are cached
as JSON under the cache directory; every HELD_OUT_EVERY-th one is held out like the others.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from mtad.distill.prompts import HELD_OUT_EVERY, Prompt, cache_dir

OPENINGS = (
    "How", "What", "Why", "Write", "Explain", "Describe", "Can you", "Give me", "Create", "List",
    "Compare", "I", "Tell me", "Help me", "Summarize", "Is it", "Which", "Suggest", "Plan", "My",
)
MAX_WORDS = 48  # tokens a request may take


def _texts(model_dir: Path, n: int, seed: int, log: bool) -> list[str]:
    from transformers import AutoTokenizer

    import mtad_ext
    from mtad.distill import engine_batch
    from mtad.distill.teacher_data import MODES, TOP_K, choose

    tok = AutoTokenizer.from_pretrained(model_dir)
    marker = "\u2063"
    header = tok.apply_chat_template([{"role": "user", "content": marker}], tokenize=False).split(marker)[0]
    model = mtad_ext.load_model(str(model_dir), dtype="float32")
    mode = next(m for m in MODES if m.name == "t10")
    eos = int(tok.convert_tokens_to_ids("<|im_end|>")) if "<|im_end|>" in tok.get_vocab() else int(tok.eos_token_id)
    gen = torch.Generator().manual_seed(seed)
    out: list[str] = []
    seen: set[str] = set()
    t0 = time.time()
    for start in range(0, n, 32):
        openings = [OPENINGS[i % len(OPENINGS)] for i in range(start, min(n, start + 32))]
        ids = [tok(header + o, add_special_tokens=False)["input_ids"] for o in openings]
        rows = engine_batch.generate(model, ids, lambda lg: choose(lg, mode, gen), MAX_WORDS, eos, TOP_K)
        for o, row in zip(openings, rows, strict=True):
            g = row["generated"].tolist()
            if not g or g[-1] != eos:
                continue  # cut off: not a whole request
            text = (o + tok.decode(g[:-1])).strip()
            if len(text) >= 12 and text not in seen:
                seen.add(text)
                out.append(text)
        if log:
            print(f"[prompts] {len(out)} requests from {start + len(openings)} tries, {time.time() - t0:.0f} s",
                  file=sys.stderr, flush=True)
    return out


def texts(model_dir: Path, n: int, seed: int = 0, log: bool = True) -> list[str]:
    """Up to n requests (tries that the target ended itself, deduplicated), cached by (n, seed)."""
    if n <= 0:
        return []
    path = cache_dir() / "distill" / f"self-prompts-{n}-{seed}.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    out = _texts(model_dir, n, seed, log)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".tmp").write_text(json.dumps(out, indent=0), encoding="utf-8")
    path.with_suffix(".tmp").rename(path)
    return out


def as_prompts(requests: list[str], prefix: str = "self/") -> list[Prompt]:
    """Chat prompts named prefix + index, every HELD_OUT_EVERY-th held out."""
    return [Prompt(f"{prefix}{i}", t, True, i % HELD_OUT_EVERY == 0) for i, t in enumerate(requests)]
