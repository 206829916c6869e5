"""bench/end_to_end.py's report arithmetic: tokens/s, ratios to our AR and llama.cpp F16,
prefill speed, outputs equal to AR's, and the goals judged from them (hand-made records)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import end_to_end  # noqa: E402


def record(set_: str, prompt: str, system: str, tokens: list[int], seconds: float, **counters: Any) -> dict:
    return {"set": set_, "prompt": prompt, "system": system, "prompt_tokens": 11, "tokens": tokens,
            "seconds": seconds, "counters": counters}  # fmt: skip


RECORDS = [
    record("humaneval", "p0", "mtad ar", [1, 2, 3, 4], 2.0, target_forwards=4, prefill_seconds=0.5),
    record("humaneval", "p1", "mtad ar", [5, 6], 2.0, target_forwards=2, prefill_seconds=0.5),
    # 6 tokens in 1.5 s over 3 target passes; its second output differs from AR's
    record("humaneval", "p0", "mtad sps", [1, 2, 3, 4], 1.0, target_forwards=2, prefill_seconds=0.25),
    record("humaneval", "p1", "mtad sps", [5, 7], 0.5, target_forwards=1, prefill_seconds=0.25),
    record("humaneval", "p0", "llama.cpp F16", [1, 2, 3, 4], 4.0, prefill_seconds=1.0),
    record("humaneval", "p1", "llama.cpp F16", [5, 6], 4.0, prefill_seconds=1.0),
]


def test_summary_and_ratios() -> None:
    summary = end_to_end.summarize(RECORDS)["humaneval"]
    assert summary["mtad ar"]["tokens_per_s"] == pytest.approx(6 / 4.0)
    assert summary["mtad sps"]["tokens_per_s"] == pytest.approx(6 / 1.5)
    assert summary["mtad sps"]["tokens_per_forward"] == pytest.approx(6 / 3)
    assert summary["mtad sps"]["same_as_ar"] == 1 and summary["mtad ar"]["same_as_ar"] == 2
    # prefill: all but the last prompt token of each prompt over the prompt passes' time
    assert summary["mtad sps"]["prefill_tokens_per_s"] == pytest.approx(20 / 0.5)
    assert summary["llama.cpp F16"]["tokens_per_forward"] == 0.0  # no passes counted
    rat = end_to_end.ratios({"humaneval": summary})["humaneval"]
    assert rat["mtad sps"]["vs_ar"] == pytest.approx((6 / 1.5) / (6 / 4.0))
    assert rat["mtad sps"]["vs_llama_cpp_f16"] == pytest.approx((6 / 1.5) / (6 / 8.0))


def test_ratios_pair_the_prompts() -> None:
    """A system that ran fewer prompts is compared with AR on those prompts only."""
    records = RECORDS + [record("humaneval", "p0", "transformers float32", [1, 2, 3, 4], 8.0)]
    rat = end_to_end.ratios(end_to_end.summarize(records))["humaneval"]
    assert rat["transformers float32"]["vs_ar"] == pytest.approx((4 / 8.0) / (4 / 2.0))
    assert rat["transformers float32"]["vs_llama_cpp_f16"] == pytest.approx((4 / 8.0) / (4 / 4.0))


def test_goals_follow_the_ratios() -> None:
    summary = end_to_end.summarize(RECORDS)
    goals = {g: (met, figures) for g, met, figures in end_to_end.goals(summary, end_to_end.ratios(summary))}
    assert goals["every method >= AR on every set"][0] is True
    # SpS is 2.67x AR: above 1.8x; the best lossless method is 2.67x AR and 5.33x llama.cpp
    assert goals["greedy SpS >= 1.8x AR"] == (True, "2.67x")
    assert goals["best lossless >= 2x AR and 2.5x llama.cpp F16 on humaneval"][0] is True
    # A slower SpS fails both.
    slow = [dict(r, seconds=r["seconds"] * 3) if r["system"] == "mtad sps" else r for r in RECORDS]
    summary = end_to_end.summarize(slow)
    goals = {g: met for g, met, _ in end_to_end.goals(summary, end_to_end.ratios(summary))}
    assert goals["every method >= AR on every set"] is False
    assert goals["greedy SpS >= 1.8x AR"] is False
