"""Scoring for bench/quality.py: the perplexity of generated tokens under the target, and
means with standard errors over prompts.

A sample's perplexity is exp of the mean negative log-likelihood of its new tokens given the
prompt and the tokens before them (EOS included when it was emitted), under one distribution:
the target's softmax at temperature 1, or the distribution the tokens were sampled from,
normalize(T, top-k, top-p) of algorithms.md 0 (the engine's own op).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch


@dataclass(frozen=True)
class Setting:
    """Sampling settings shared by every method in a comparison."""

    name: str
    temperature: float
    top_k: int
    top_p: float

    def kwargs(self) -> dict[str, Any]:
        return {"temperature": self.temperature, "top_k": self.top_k, "top_p": self.top_p}


def token_scores(model: Any, prompt_ids: Sequence[int], new_ids: Sequence[int], setting: Setting | None) -> tuple[
    list[float], list[float] | None, list[float] | None
]:
    """Per new token: its log-probability under the target at T = 1; under `setting`'s
    normalize (None when setting is None or greedy, where that distribution is one-hot); and
    the entropy (nats) of that distribution at its position (None likewise). A token drawn exactly from
    that distribution has, in expectation, a negative log-likelihood equal to this entropy,
    whatever came before: the per-token check of a sampler (sampler_check)."""
    import mtad_ext

    if not new_ids:
        empty = None if setting is None or setting.temperature == 0 else []
        return [], empty, empty
    seq = list(prompt_ids) + list(new_ids)
    # Row i of the logits predicts token i + 1: the rows that predict the new tokens.
    first = len(prompt_ids) - 1
    rows = torch.arange(first, len(seq) - 1, dtype=torch.int64)
    cache = model.new_cache(capacity=len(seq))
    logits = model.forward(cache, torch.tensor(seq[:-1], dtype=torch.int64), logit_rows=rows)
    target = torch.tensor(list(new_ids), dtype=torch.int64).unsqueeze(1)
    at_t1 = torch.log_softmax(logits.double(), dim=-1).gather(1, target).squeeze(1).tolist()
    if setting is None or setting.temperature == 0:
        return at_t1, None, None
    norm = mtad_ext.ops.normalize(logits, setting.temperature, setting.top_k, setting.top_p).double()
    probs = norm.exp()
    entropy = -torch.where(probs > 0, probs * norm, torch.zeros_like(norm)).sum(1)
    return at_t1, norm.gather(1, target).squeeze(1).tolist(), entropy.tolist()


def sampler_check(at_setting: Sequence[float] | None, entropy: Sequence[float] | None) -> float | None:
    """Mean over tokens of (negative log-likelihood under the sampled distribution minus its
    entropy), nats: 0 in expectation for any exact sampler of that distribution (AR, SpS,
    ADED); below 0 for a method that favours likelier tokens (MTAD, by design)."""
    if not at_setting or not entropy:
        return None
    return sum(-lp - h for lp, h in zip(at_setting, entropy, strict=True)) / len(entropy)


def perplexity(logprobs: Sequence[float] | None) -> float | None:
    """exp(mean negative log-likelihood); inf when a token had no mass; None for no tokens."""
    if not logprobs:
        return None
    return math.exp(-sum(logprobs) / len(logprobs))


@dataclass(frozen=True)
class Estimate:
    """A mean over n prompts with its standard error (0 for one prompt)."""

    mean: float
    se: float
    n: int

    def half_width(self, level: float = 0.95) -> float:
        """Student's t over the n prompts (n - 1 degrees of freedom): with 10 prompts the
        normal quantile (1.96) would make the interval 13 % too narrow."""
        if self.n < 2:
            return 0.0
        from scipy.stats import t

        return float(t.ppf(0.5 + level / 2, self.n - 1)) * self.se

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        h = self.half_width(level)
        return self.mean - h, self.mean + h

    def text(self, digits: int = 3) -> str:
        lo, hi = self.interval()
        return f"{self.mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def estimate(values: Sequence[float]) -> Estimate | None:
    """Mean and standard error of finite values (None when there are none)."""
    xs = [v for v in values if v is not None and math.isfinite(v)]
    if not xs:
        return None
    n = len(xs)
    mean = sum(xs) / n
    if n == 1:
        return Estimate(mean, 0.0, 1)
    var = sum((x - mean) ** 2 for x in xs) / (n - 1)
    return Estimate(mean, math.sqrt(var / n), n)
