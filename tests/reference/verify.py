"""Plain float64 references of the joint-likelihood verification (algorithms.md 3.2) and of
speculative sampling's acceptance (algorithms.md 2), drawing the engine's counter-based uniforms."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from reference.rng import uniform
from reference.sampling import normalize

NEG_INF = -math.inf
# A decision whose two sides are closer than this is left to float32 rounding, where the
# engine (float32) and the references (float64) may disagree: the references report such
# cases as ambiguous and the tests skip them.
MARGIN = 1e-4
# The same for an inverse-CDF draw: the running sum (double in the engine) against u.
DRAW_MARGIN = 1e-6


def draw(weights: list[float], target: float) -> tuple[int, float]:
    """First id whose running sum exceeds target (else the last with weight), and how
    close the running sum came to target at the decisive ids."""
    cum, last, margin = 0.0, -1, math.inf
    for v, w in enumerate(weights):
        if w <= 0.0:
            continue
        cum += w
        last = v
        margin = min(margin, abs(cum - target))
        if cum > target:
            return v, margin
    return last, margin


@dataclass
class VerifyRef:
    accept_len: int
    accept_node: int
    path: list[int]
    bonus_token: int
    node_logprob: torch.Tensor
    ambiguous: bool  # a decision lies within MARGIN of flipping


def reference_verify(
    logits: torch.Tensor,
    parents: list[int],
    tokens: list[int],
    best_lq: list[float],
    tau: float,
    params: tuple[float, int, float],
    seed: int,
    offset: int,
) -> VerifyRef:
    """Sections 3.2 / 3.3 written out node by node in float64."""
    logp = ref_normalize(logits, *params).double().tolist()
    n_nodes = len(parents)
    lp: list[float] = []
    depth: list[int] = []
    for n in range(n_nodes):
        p = parents[n]
        row = 0 if p < 0 else p + 1
        lp.append((0.0 if p < 0 else lp[p]) + logp[row][tokens[n]])
        depth.append(1 if p < 0 else depth[p] + 1)
    lq_cum = [sum(best_lq[:d]) for d in range(1, len(best_lq) + 1)]
    log_tau = math.log(tau)
    margin = math.inf
    passing: list[int] = []
    for n in range(n_nodes):
        gap = lp[n] - lq_cum[depth[n] - 1] - log_tau
        if math.isfinite(gap):
            margin = min(margin, abs(gap))
        if gap > 0:
            passing.append(n)
    a = max((depth[n] for n in passing), default=0)
    node, path = -1, []
    if a > 0:
        at_a = [n for n in passing if depth[n] == a]
        node = min(at_a, key=lambda n: (-lp[n], n))
        # Nearly (but not exactly) tied LPs: the float32 engine may order them otherwise.
        for n in at_a:
            if n != node and 0 < lp[node] - lp[n] < MARGIN:
                margin = 0.0
        m = node
        while m >= 0:
            path.append(m)
            m = parents[m]
        path.reverse()
    row = 0 if a == 0 else node + 1
    bonus, draw_margin = draw([math.exp(x) for x in logp[row]], uniform(seed, offset))
    return VerifyRef(
        accept_len=a,
        accept_node=node,
        path=path,
        bonus_token=bonus,
        node_logprob=torch.tensor(lp, dtype=torch.float64),
        ambiguous=margin < MARGIN or draw_margin < DRAW_MARGIN,
    )


def reference_sps(
    tlp: torch.Tensor, dlp: torch.Tensor, tokens: list[int], seed: int, offset: int
) -> tuple[int, int, bool]:
    """Section 2 in float64: (accepted, next token, ambiguous)."""
    p_rows, q_rows = tlp.double().tolist(), dlp.double().tolist()
    g = len(tokens)
    n, margin, draw_margin = g, math.inf, math.inf
    for i, x in enumerate(tokens):
        lp, lq = p_rows[i][x], q_rows[i][x]
        ratio = 0.0 if lp == NEG_INF else 1.0 if lq == NEG_INF else min(1.0, math.exp(lp - lq))
        u = uniform(seed, offset + i)
        margin = min(margin, abs(u - ratio))
        if not u < ratio:
            n = i
            break
    u = uniform(seed, offset + g)
    p = [math.exp(x) for x in p_rows[n]]
    token = -1
    if n < g:
        residual = [max(0.0, pv - math.exp(qv)) for pv, qv in zip(p, q_rows[n], strict=True)]
        total = sum(residual)
        if total > 0:
            token, m = draw(residual, u * total)
            draw_margin = m / total
    if token < 0:
        token, draw_margin = draw(p, u)
    return n, token, margin < MARGIN or draw_margin < DRAW_MARGIN


def ref_normalize(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
    """The reference log-probabilities in float32, as the ops take them."""
    return normalize(logits, temperature, top_k, top_p)[0].float()
