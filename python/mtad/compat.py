"""Whether a draft model can assist a target: same vocabulary and special tokens."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .tokenizer import Tokenizer


class IncompatibleDraftError(ValueError):
    """The draft model cannot assist the target: vocabulary or special tokens differ."""


def _model_ids(config: Mapping[str, Any]) -> dict[str, int | None]:
    def one(v: Any) -> int | None:
        if isinstance(v, list):
            v = v[0] if v else None
        return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None

    return {name: one(config.get(f"{name}_token_id")) for name in ("bos", "eos", "pad")}


def check_draft_compatible(
    target_config: Mapping[str, Any],
    target_tokenizer: Tokenizer,
    draft_config: Mapping[str, Any],
    draft_tokenizer: Tokenizer | None = None,
    target_name: str = "the target",
    draft_name: str = "the draft",
) -> None:
    """Raise IncompatibleDraftError naming every difference that makes `draft` unusable.

    Checked: the models' vocabulary size; with a draft tokenizer, its size, bos/eos/pad
    ids, its special tokens (string -> id) and the whole token -> id map; without one,
    the draft config's bos/eos/pad ids against the target's.
    """
    problems: list[str] = []
    tv, dv = target_config.get("vocab_size"), draft_config.get("vocab_size")
    if tv != dv:
        problems.append(f"vocabulary size {dv} vs {tv}")
    if draft_tokenizer is not None:
        t, d = target_tokenizer, draft_tokenizer
        if d.vocab_size != t.vocab_size:
            problems.append(f"tokenizer vocabulary size {d.vocab_size} vs {t.vocab_size}")
        for name in ("bos", "eos", "pad"):
            ti, di = getattr(t, f"{name}_token_id"), getattr(d, f"{name}_token_id")
            if ti != di:
                problems.append(f"{name} token id {di} vs {ti}")
        ts, ds = t.special_vocab, d.special_vocab
        if ts != ds:
            diff = [f"{k!r}={v}" for k, v in ds.items() if ts.get(k) != v][:4]
            diff += [f"no {k!r}" for k in ts if k not in ds][:4]
            problems.append(f"special tokens differ ({', '.join(diff)})")
        elif not problems:
            tvoc, dvoc = t.get_vocab(), d.get_vocab()
            if tvoc != dvoc:
                bad = [k for k, v in dvoc.items() if tvoc.get(k) != v]
                ex = ", ".join(f"{k!r}={dvoc[k]} vs {tvoc.get(k)}" for k in sorted(bad, key=dvoc.get)[:3])
                problems.append(f"{len(bad)} tokens map to other ids ({ex})")
    else:
        tids, dids = _model_ids(target_config), _model_ids(draft_config)
        for name in ("bos", "eos", "pad"):
            if dids[name] is not None and tids[name] is not None and dids[name] != tids[name]:
                problems.append(f"{name} token id {dids[name]} vs {tids[name]}")
    if problems:
        raise IncompatibleDraftError(
            f"draft {draft_name} is incompatible with target {target_name} (draft vs target): "
            + "; ".join(problems)
        )
