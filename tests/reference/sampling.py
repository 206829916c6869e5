"""The one Python reference of algorithms.md section 0 (normalize) and of ops/sampling.h's
inverse-CDF draw, written out row by row in float64; every sampling test is held to it."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from reference.rng import rng_uniform

NEG_INF = -math.inf


def normalize(
    logits: Tensor, temperature: float, top_k: int, top_p: float
) -> tuple[Tensor, Tensor]:
    """§0 row by row with a plain sort, in float64 after the float32 division by T.
    Also returns per row whether a top-p prefix mass lies within rounding of P (the
    kept set is then up to float luck and the row is not compared)."""
    rows, vocab = logits.shape
    out = torch.full((rows, vocab), NEG_INF, dtype=torch.float64)
    ambiguous = torch.zeros(rows, dtype=torch.bool)
    for r in range(rows):
        if temperature == 0:
            row = logits[r].tolist()
            out[r, max(range(vocab), key=lambda i: (row[i], -i))] = 0.0
            continue
        x = (logits[r] / temperature).tolist()  # the op divides in float32 too
        m = max(x)
        if not math.isfinite(m):  # no finite maximum: greedy fallback
            out[r, max(range(vocab), key=lambda i: (x[i], -i))] = 0.0
            continue
        order = sorted(range(vocab), key=lambda i: (-x[i], i))
        kept = order[:top_k] if 0 < top_k < vocab else order
        if 0 < top_p < 1:
            weights = [math.exp(x[i] - m) for i in kept]
            target = top_p * sum(weights)
            cum, n = 0.0, len(kept)
            for j, w in enumerate(weights):
                cum += w
                if abs(cum - target) <= 1e-6 * target:
                    ambiguous[r] = True
                if cum >= target:
                    n = j + 1
                    break
            kept = kept[:n]
        lse = m + math.log(sum(math.exp(x[i] - m) for i in kept))
        for i in kept:
            out[r, i] = x[i] - lse
    return out, ambiguous


def sample(logprobs: Tensor, seed: int, offset: int) -> tuple[Tensor, Tensor]:
    """Inverse-CDF draws as ops/sampling.h states them, and per row whether u lies within
    rounding of a cumulative boundary."""
    rows, vocab = logprobs.shape
    u = rng_uniform(seed, [offset + r for r in range(rows)]).astype(np.float64)
    probs = torch.exp(logprobs.double())
    out = torch.full((rows,), -1, dtype=torch.int64)
    ambiguous = torch.zeros(rows, dtype=torch.bool)
    for r in range(rows):
        cum = 0.0
        for v, p in enumerate(probs[r].tolist()):
            if p <= 0:
                continue
            cum += p
            out[r] = v
            if abs(cum - u[r]) < 1e-6:
                ambiguous[r] = True
            if cum > u[r]:
                break
    return out, ambiguous


def random_logits(rows: int, vocab: int, seed: int, scale: float = 3.0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, vocab, generator=g) * scale
