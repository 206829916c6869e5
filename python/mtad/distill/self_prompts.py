"""User requests written by the target itself: many more, and more varied, chat prompts than
the offline sets hold.

The target samples a user turn after its chat template's user header, each one started with
one of a few opening words (so that requests, questions and tasks all occur), at temperature
1 and top-p 0.95; a request counts when the target ends the turn itself. The texts are cached
as JSON under the cache directory (a set still being written keeps its progress beside it, so
a stopped run loses nothing); every HELD_OUT_EVERY-th one is held out like the others.
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


def cache_files(n: int, seed: int) -> tuple[Path, Path]:
    """The finished set's file and the file of a set still being written (its requests so far,
    its tries, the generator's state), so that a stopped run resumes where it stopped."""
    base = cache_dir() / "distill" / f"self-prompts-{n}-{seed}"
    return base.with_name(base.name + ".json"), base.with_name(base.name + ".partial.json")


def _write(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=0), encoding="utf-8")
    tmp.rename(path)


def _texts(model_dir: Path, n: int, seed: int, log: bool, at_least: int | None) -> tuple[list[str], bool]:
    """The requests of n tries (and True), or, with at_least, the first ones once there are that
    many (and False). Resumes from the partial file and keeps it up to date after every batch."""
    from transformers import AutoTokenizer

    import mtad_ext
    from mtad.distill import engine_batch
    from mtad.distill.teacher_data import MODES, TOP_K, choose

    _, partial = cache_files(n, seed)
    tok = AutoTokenizer.from_pretrained(model_dir)
    marker = "\u2063"
    header = tok.apply_chat_template([{"role": "user", "content": marker}], tokenize=False).split(marker)[0]
    model = mtad_ext.load_model(str(model_dir), dtype="float32")
    mode = next(m for m in MODES if m.name == "t10")
    eos = int(tok.convert_tokens_to_ids("<|im_end|>")) if "<|im_end|>" in tok.get_vocab() else int(tok.eos_token_id)
    gen = torch.Generator().manual_seed(seed)
    out: list[str] = []
    done = 0  # tries so far; always a whole number of batches
    if partial.is_file():
        state = json.loads(partial.read_text(encoding="utf-8"))
        out, done = state["texts"], state["tries"]
        gen.set_state(torch.tensor(state["generator"], dtype=torch.uint8))
    seen = set(out)
    t0 = time.time()
    for start in range(done, n, 32):
        if at_least is not None and len(out) >= at_least:
            return out, False
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
        done = start + len(openings)
        _write(partial, {"tries": done, "texts": out, "generator": gen.get_state().tolist()})
        if log:
            print(f"[prompts] {len(out)} requests from {done} of {n} tries (seed {seed}), {time.time() - t0:.0f} s",
                  file=sys.stderr, flush=True)
    return out, True


def texts(model_dir: Path, n: int, seed: int = 0, log: bool = True, at_least: int | None = None) -> list[str]:
    """Up to n requests (tries that the target ended itself, deduplicated), cached by (n, seed).
    With at_least, as soon as that many are written: the first requests of the whole set, the
    same texts in the same order (the tries run in the same batches from the same generator
    state), so a caller that needs only the first few need not wait for all n tries."""
    if n <= 0:
        return []
    whole, partial = cache_files(n, seed)
    if whole.is_file():
        return json.loads(whole.read_text(encoding="utf-8"))
    if at_least is not None and partial.is_file():
        so_far = json.loads(partial.read_text(encoding="utf-8"))["texts"]
        if len(so_far) >= at_least:
            return so_far
    out, finished = _texts(model_dir, n, seed, log, at_least)
    if finished:
        _write(whole, out)
        partial.unlink(missing_ok=True)
    return out


def as_prompts(requests: list[str], prefix: str = "self/") -> list[Prompt]:
    """Chat prompts named prefix + index, every HELD_OUT_EVERY-th held out."""
    return [Prompt(f"{prefix}{i}", t, True, i % HELD_OUT_EVERY == 0) for i, t in enumerate(requests)]
