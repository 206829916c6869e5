"""Plain reference of MTAD's draft with a greedy draft (algorithms.md 3.1, draft T = 0): a
beam search of width W on the draft's joint log-probabilities under its plain softmax
(T = 1, no truncation), written out beam by beam in float64."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch


@dataclass
class Beam:
    tokens: list[int]
    logprobs: list[float]  # per token: log softmax of the draft after the beam's earlier tokens
    score: float  # the joint log-probability, sum of logprobs


def greedy_beam_search(
    next_logprobs: Callable[[Sequence[int]], torch.Tensor], width: int, gamma: int
) -> tuple[list[Beam], float]:
    """The W beams after `gamma` steps, best first, and the smallest gap between two joint
    scores that decided anything (the W-th against the (W+1)-th candidate at each depth, and
    the best final beam against the second): a gap within rounding leaves the choice to float32 luck.

    `next_logprobs(tokens)` is the draft's log softmax (float64, [V]) after the committed
    prefix followed by `tokens` (the beam's own tokens; empty at depth 1). Candidates tie to
    the better beam, then the lower token id."""
    beams = [Beam([], [], 0.0)]
    margin = math.inf
    for depth in range(1, gamma + 1):
        cands: list[tuple[float, int, int, float]] = []  # (joint, parent rank, token, log s)
        for j, b in enumerate(beams):
            lp = next_logprobs(b.tokens).double()
            for v, x in enumerate(lp.tolist()):
                if x > -math.inf:
                    cands.append((b.score + x, j, v, x))
        cands.sort(key=lambda c: (-c[0], c[1], c[2]))
        if len(cands) > width:
            margin = min(margin, cands[width - 1][0] - cands[width][0])
        chosen = cands[:width]
        if depth == gamma and len(chosen) > 1:
            margin = min(margin, chosen[0][0] - chosen[1][0])
        beams = [Beam(beams[j].tokens + [v], beams[j].logprobs + [x], joint) for joint, j, v, x in chosen]
    return beams, margin
