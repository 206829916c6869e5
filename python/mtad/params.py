"""Checks of sampling parameters (no torch needed, so the command checks them cheaply)."""

from __future__ import annotations

import math


def check_params(temperature: float, top_k: int, top_p: float) -> None:
    """Raise ValueError naming the first invalid sampling parameter."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise ValueError(f"temperature must be a number, got {temperature!r}")
    if not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if isinstance(top_k, bool) or not isinstance(top_k, int):
        raise ValueError(f"top_k must be an integer, got {top_k!r}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 = keep all), got {top_k}")
    if isinstance(top_p, bool) or not isinstance(top_p, (int, float)):
        raise ValueError(f"top_p must be a number, got {top_p!r}")
    if not (0.0 <= top_p <= 1.0):  # also rejects NaN
        raise ValueError(f"top_p must be in [0, 1] (0 or 1 = keep all), got {top_p}")


# Weight types a model loads in (mtad.load's dtype, the command's --dtype).
DTYPES = ("auto", "float32", "float16", "bfloat16")
