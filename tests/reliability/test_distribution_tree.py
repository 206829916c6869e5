"""ADED's lossless tree sampler (ops.tree_sample, algorithms.md 4) against the exact target
distribution over everything it can emit, at every trie node and depth, with stated power
(dist_stats.py); and biased re-implementations that the same test must reject."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from dist_stats import assert_powerful, chi_square_fit, tv_distance

from mtad_ext import ops

VOCAB = 6
# A trie 4 deep: root children 0, 1, 2; node 0 (token 0) has 3, 4; node 1 has 0; node 3
# has 5, 1; node 6 (token 5) has 2. Parents come before children, siblings are distinct.
PARENTS = [-1, -1, -1, 0, 0, 1, 3, 3, 6]
TOKENS = [0, 1, 2, 3, 4, 0, 5, 1, 2]
TRIALS = 220_000


def children(node: int) -> list[int]:
    return [c for c, p in enumerate(PARENTS) if p == node]


def target_rows(temperature: float = 1.0) -> np.ndarray:
    """Row m + 1 is the target's distribution after node m (row 0: at the root). Random
    logits, the main path (0 -> 3 -> 5 -> 2) raised so that deep nodes are reached often,
    one flat row and one peaked row."""
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(len(PARENTS) + 1, VOCAB, generator=g, dtype=torch.float64)
    for row, tok in ((0, 0), (0, 1), (1, 3), (4, 5), (7, 2)):
        logits[row, tok] += 1.2
    logits[2] *= 0.1  # node 1's row: nearly flat
    logits[5, 4] += 4.0  # node 4's row: peaked
    return torch.softmax(logits / temperature, -1).numpy()


def exact_cells(rows: np.ndarray) -> np.ndarray:
    """P(the walk ends at node m and then emits v), cell (m + 1, v): the product of the
    target's probabilities along the path to m, times row m's p(v) for v not a child's
    token (a child's token there would have moved the walk on: probability 0)."""
    reach = np.zeros(len(PARENTS) + 1)
    reach[0] = 1.0
    for c, p in enumerate(PARENTS):
        reach[c + 1] = reach[p + 1] * rows[p + 1, TOKENS[c]]
    cells = reach[:, None] * rows
    for c, p in enumerate(PARENTS):
        cells[p + 1, TOKENS[c]] = 0.0
    return cells


def engine_counts(logp: torch.Tensor, n: int, seed: int) -> np.ndarray:
    parents = torch.tensor(PARENTS, dtype=torch.int64)
    tokens = torch.tensor(TOKENS, dtype=torch.int64)
    counts = np.zeros((len(PARENTS) + 1, VOCAB), dtype=np.int64)
    stride = len(PARENTS) + 1  # the op uses counters offset .. offset + nodes
    for t in range(n):
        r = ops.tree_sample(logp, parents, tokens, seed, t * stride)
        end = int(r["path"][-1]) if r["accept_len"] else -1
        counts[end + 1, r["next_token"]] += 1
    return counts


def simulate(rows: np.ndarray, n: int, seed: int, *, reset_rejected: bool = True,
             residual_from_p: bool = False) -> np.ndarray:
    """Multi-candidate rejection over the trie, vectorised over n trials: at a node, try its
    children in order, accepting child x with probability p'(x) / (1 - rejected mass) where
    p' is the row with the rejected tokens removed; at the end emit a draw from p'. The
    biased variants keep the rejected tokens of the levels above (reset_rejected=False) or
    emit the last draw from the whole row (residual_from_p=True)."""
    rng = np.random.default_rng(seed)
    counts = np.zeros((len(PARENTS) + 1, VOCAB), dtype=np.int64)
    node = np.full(n, -1)
    walking = np.ones(n, dtype=bool)
    rejected = np.zeros((n, VOCAB), dtype=bool)
    while walking.any():
        for m in np.unique(node[walking]):
            idx = np.flatnonzero(walking & (node == m))
            row = rows[m + 1]
            if reset_rejected:
                rejected[idx] = False
            mass = np.zeros(idx.size)
            undecided = np.ones(idx.size, dtype=bool)
            for c in children(int(m)):
                x = TOKENS[c]
                px = np.where(rejected[idx, x], 0.0, row[x])
                rest = 1.0 - mass
                accept = undecided & (rng.random(idx.size) * rest < px)
                node[idx[accept]] = c
                undecided &= ~accept
                mass += np.where(undecided & ~rejected[idx, x], px, 0.0)
                rejected[idx[undecided], x] = True
            done = idx[undecided]
            weights = np.broadcast_to(row, (done.size, VOCAB)).copy()
            if not residual_from_p:
                weights[rejected[done]] = 0.0
            cum = np.cumsum(weights, 1)
            u = rng.random(done.size) * cum[:, -1]
            emitted = np.minimum((cum <= u[:, None]).sum(1), VOCAB - 1)
            np.add.at(counts, (m + 1, emitted), 1)
            walking[done] = False
    return counts


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return target_rows()


def test_exact_cells_cover_every_node_and_depth(rows: np.ndarray) -> None:
    cells = exact_cells(rows)
    assert abs(cells.sum() - 1.0) < 1e-12
    # Every node is on the emitted path with probability >= 1 %, so each node's row and
    # acceptance feed the test, down to depth 4.
    reach = [cells[c + 1].sum() + sum(cells[d + 1].sum() for d in range(len(PARENTS)) if _below(d, c))
             for c in range(len(PARENTS))]
    assert min(reach) > 0.01, reach


def _below(d: int, c: int) -> bool:
    while d >= 0:
        d = PARENTS[d]
        if d == c:
            return True
    return False


def test_tree_sample_matches_exact_distribution(rows: np.ndarray) -> None:
    """The emitted sequence (accepted path + next token) is distributed as sampling from the
    target token by token. Cells: the node the walk ends at x the token it emits (51
    reachable, 50 degrees of freedom). Power (dist_stats): at ALPHA = 1e-3 the critical
    value is chi2.isf(1e-3, 50) = 86.7; a sampler off by 1 % in total variation has
    noncentrality >= 4 * 220,000 * 0.01^2 = 88 (no cell is pooled here), so it is caught
    with probability ncx2.sf(86.7, 50, 88) = 0.996 >= 0.99 (assert_powerful recomputes it
    for the cells actually used)."""
    logp = torch.from_numpy(np.log(rows)).float()
    exact = exact_cells(rows)
    counts = engine_counts(logp, TRIALS, seed=11)
    fit = chi_square_fit(counts, exact)
    assert_powerful(fit, TRIALS)
    assert not fit.rejects, fit
    # Every node ended a walk many times: the test saw each depth's acceptance and residual.
    assert (counts.sum(1) > 1000).all(), counts.sum(1)


@pytest.mark.parametrize("bias", ["correct", "rejected_not_reset", "residual_from_p", "temperature_5pc"])
def test_simulated_samplers_prove_the_test(rows: np.ndarray, bias: str) -> None:
    """The same test, at the same trial count, passes a correct re-implementation and
    rejects each biased one (all off by more than 1 % in total variation)."""
    exact = exact_cells(rows)
    kw = {"rejected_not_reset": dict(reset_rejected=False), "residual_from_p": dict(residual_from_p=True)}
    sim_rows = target_rows(1.05) if bias == "temperature_5pc" else rows
    counts = simulate(sim_rows, TRIALS, seed=3, **kw.get(bias, {}))
    fit = chi_square_fit(counts, exact)
    assert fit.rejects == (bias != "correct"), (bias, fit)
    if bias == "temperature_5pc":
        assert tv_distance(exact_cells(sim_rows), exact) > 0.01
