"""Plain references of the ADED tree ops (algorithms.md 4): greedy tree_accept and the
lossless tree_sample walk."""

from __future__ import annotations

import math
import struct

import torch

from reference.rng import uniform

# Decisions closer than this to their threshold are left to rounding (float32 engine,
# float64 reference): the references report them as ambiguous.
MARGIN = 1e-6


def f32(x: float) -> float:
    return struct.unpack("f", struct.pack("f", x))[0]


def ref_tree_accept(best: list[int], parents: list[int], tokens: list[int]) -> tuple[int, list[int], int]:
    matched: list[int] = []
    a, end = 0, -1
    for n, p in enumerate(parents):
        ok = tokens[n] == best[p + 1] and (p < 0 or matched[p] > 0)
        matched.append((1 if p < 0 else matched[p] + 1) if ok else 0)
        if matched[n] > a:
            a, end = matched[n], n
    path, n = [], end
    while n >= 0:
        path.append(n)
        n = parents[n]
    return a, path[::-1], best[end + 1]


def ref_tree_sample(
    logp: torch.Tensor, parents: list[int], tokens: list[int], seed: int, offset: int
) -> tuple[int, list[int], int, bool]:
    """(accept_len, path, next token, ambiguous): the walk of sample_walk and the draw."""
    n_nodes, vocab = len(parents), logp.shape[1]
    rows = logp.double().tolist()
    node, path, ambiguous = -1, [], False
    while True:
        p = rows[node + 1]
        mass, rejected, nxt = 0.0, [], -1
        for c in range(node + 1, n_nodes):
            if parents[c] != node:
                continue
            x = tokens[c]
            seen = x in rejected
            px = 0.0 if seen else math.exp(p[x])
            rest = 1.0 - mass
            accept = min(1.0, px / rest) if rest > 0 else 0.0
            u = uniform(seed, offset + c)
            ambiguous |= abs(u - accept) < MARGIN
            if u < accept:
                nxt = c
                break
            if not seen:
                mass += px
                rejected.append(x)
        if nxt < 0:
            break
        path.append(nxt)
        node = nxt
    p = rows[node + 1]
    weights = [0.0 if v in rejected else f32(math.exp(p[v])) for v in range(vocab)]
    u = uniform(seed, offset + n_nodes)
    total = sum(weights)
    token = -1
    if total > 0:
        target, cum = u * total, 0.0
        for v, w in enumerate(weights):
            if w > 0:
                cum += w
                ambiguous |= abs(cum - target) < MARGIN
                token = v
                if cum > target:
                    break
    return len(path), path, token, ambiguous
