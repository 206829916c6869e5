"""What a generate() call returns, and the counters it reports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class GenerationResult:
    """What one generate() call produced.

    token_ids are the new tokens, including the EOS token when finish_reason is "eos" and
    the token that completed a stop string when it is "stop"; text excludes both (special
    tokens are skipped, the stop string and anything after it are cut). A step that emits
    several tokens is cut at the token that ends generation.

    counters (times exclude time spent by a streaming consumer between pieces):
      prefill_seconds (the prompt pass), decode_seconds (all steps), total_seconds,
      decode_tokens_per_s (new tokens / decode time), tokens_per_s (new tokens / total),
      steps, target_forwards and draft_forwards (decoding passes; the prompt pass is not
      counted; a model with learned positions that finishes with AR near the end of its
      position table adds one), drafted and accepted (draft tokens put before the target,
      every node of the tree for mtad-tree and of the trie for aded, and those it
      accepted), acceptance_rate (accepted / drafted), tokens_per_target_forward (new
      tokens per target pass: the block efficiency, 1 for AR), and the engine's time split
      draft_seconds, verify_seconds, rollback_seconds, other_seconds.
    """

    text: str
    token_ids: list[int]
    prompt_tokens: int
    finish_reason: str  # "eos" | "stop" | "length"
    method: str = "ar"
    counters: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def add_stats(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, float]:
    """Two engine stats dicts summed key by key."""
    return {k: a.get(k, 0) + b.get(k, 0) for k in set(a) | set(b)}


def counters(n_new: int, steps: int, prefill_s: float, decode_s: float, stats: Mapping[str, float]) -> dict[str, float]:
    """GenerationResult.counters from the new-token count, the times and the engine's stats."""
    total_s = prefill_s + decode_s
    forwards = int(stats.get("target_forwards", 0))
    drafted = int(stats.get("drafted", 0))
    return {
        "prefill_seconds": prefill_s,
        "decode_seconds": decode_s,
        "total_seconds": total_s,
        "decode_tokens_per_s": n_new / decode_s if decode_s else 0.0,
        "tokens_per_s": n_new / total_s if total_s else 0.0,
        "steps": steps,
        "target_forwards": forwards,
        "draft_forwards": int(stats.get("draft_forwards", 0)),
        "drafted": drafted,
        "accepted": int(stats.get("accepted", 0)),
        "acceptance_rate": stats.get("accepted", 0) / drafted if drafted else 0.0,
        "tokens_per_target_forward": n_new / forwards if forwards else 0.0,
        "draft_seconds": float(stats.get("draft_s", 0.0)),
        "verify_seconds": float(stats.get("verify_s", 0.0)),
        "rollback_seconds": float(stats.get("rollback_s", 0.0)),
        "other_seconds": float(stats.get("other_s", 0.0)),
    }
