"""MTAD's draft beam step (ops.beam_step, algorithms.md 3.1) at width W > 1 against the exact
distributions, with stated power (dist_stats.py): Gumbel top-W must be sampling W distinct
candidates without replacement from softmax(joint scores), and with replacement W
independent draws. Biased re-implementations prove the same test rejects them."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from dist_stats import assert_powerful, chi_square_fit, tv_distance

from mtad_ext import ops

ROWS, VOCAB, WIDTH = 2, 4, 3
CANDIDATES = ROWS * VOCAB
TEMPERATURE = 0.8
TRIALS = 300_000


def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """Two beams of unequal score over four tokens; one row peaked, one nearly flat."""
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(ROWS, VOCAB, generator=g)
    logits[0, 2] += 0.8
    logits[1] *= 0.2
    scores = torch.log_softmax(torch.tensor([0.4, -0.4]), 0)
    return logits, scores


def joint_probs(temperature: float, with_scores: bool = True) -> np.ndarray:
    """softmax over the W x V joint scores b_j + log s_j(v) (float64)."""
    logits, scores = inputs()
    lp = torch.log_softmax(logits.double() / temperature, -1)
    joint = (scores.double().unsqueeze(1) if with_scores else 0) + lp
    return torch.softmax(joint.flatten(), 0).numpy()


def outcomes(with_replacement: bool) -> list[tuple[int, ...]]:
    pick = itertools.combinations_with_replacement if with_replacement else itertools.combinations
    return list(pick(range(CANDIDATES), WIDTH))


def exact(pi: np.ndarray, with_replacement: bool) -> np.ndarray:
    """P(the chosen candidates, as a sorted tuple). Without replacement: summed over the
    orders of sequential draws, each renormalised over what is left; with replacement: the
    multinomial probability of the multiset."""
    out = []
    for combo in outcomes(with_replacement):
        if with_replacement:
            mult = math.factorial(WIDTH) / math.prod(math.factorial(combo.count(c)) for c in set(combo))
            out.append(mult * math.prod(pi[c] for c in combo))
        else:
            total = 0.0
            for order in itertools.permutations(combo):
                prob, left = 1.0, 1.0
                for c in order:
                    prob *= pi[c] / left
                    left -= pi[c]
                total += prob
            out.append(total)
    return np.array(out)


def count(chosen: np.ndarray, with_replacement: bool) -> np.ndarray:
    """Counts per outcome of an [n, W] array of chosen candidate ids."""
    index = np.full(CANDIDATES**WIDTH, -1)
    for i, combo in enumerate(outcomes(with_replacement)):
        index[np.ravel_multi_index(combo, (CANDIDATES,) * WIDTH)] = i
    keys = np.ravel_multi_index(tuple(np.sort(chosen, 1).T), (CANDIDATES,) * WIDTH)
    assert (index[keys] >= 0).all(), "a chosen set that cannot occur (a repeat without replacement)"
    return np.bincount(index[keys], minlength=len(outcomes(with_replacement)))


def engine_chosen(with_replacement: bool, n: int, seed: int) -> np.ndarray:
    logits, scores = inputs()
    chosen = np.empty((n, WIDTH), dtype=np.int64)
    for t in range(n):
        parent, token, _, _ = ops.beam_step(logits, scores, WIDTH, TEMPERATURE, 0, 1.0, with_replacement, seed,
                                            t * CANDIDATES)  # fmt: skip
        chosen[t] = (parent * VOCAB + token).numpy()
    return chosen


def simulate(pi: np.ndarray, n: int, seed: int, distinct: bool) -> np.ndarray:
    """Gumbel top-W (distinct) or W independent categorical draws, in numpy."""
    rng = np.random.default_rng(seed)
    if distinct:
        keys = np.log(pi) + rng.gumbel(size=(n, CANDIDATES))
        return np.argsort(-keys, 1)[:, :WIDTH]
    return rng.choice(CANDIDATES, size=(n, WIDTH), p=pi)


@pytest.mark.parametrize("with_replacement", [False, True])
def test_beam_step_width_3_matches_exact_distribution(with_replacement: bool) -> None:
    """Without replacement: the set of 3 beams out of 8 candidates (56 cells); with
    replacement: the multiset of 3 draws (120 cells). Cells expected fewer than 5 times are
    pooled (3 and 15 of them, < 0.01 % of the mass), leaving 53 and 105 degrees of freedom.
    Power (dist_stats): at ALPHA = 1e-3 the critical values are 90.6 and 155.5; a sampler
    off by 1 % in total variation (>= 0.99 % after pooling) has noncentrality
    >= 4 * 300,000 * 0.0099^2 = 118, caught with probability ncx2.sf(90.6, 53, 118) =
    0.99996 and ncx2.sf(155.5, 105, 118) = 0.998, both >= 0.99 (assert_powerful
    recomputes the bound for the cells actually used)."""
    pi = joint_probs(TEMPERATURE)
    probs = exact(pi, with_replacement)
    counts = count(engine_chosen(with_replacement, TRIALS, seed=17), with_replacement)
    fit = chi_square_fit(counts, probs)
    assert_powerful(fit, TRIALS)
    assert not fit.rejects, fit


@pytest.mark.parametrize(
    ("with_replacement", "bias"),
    [(False, "correct"), (False, "temperature_5pc"), (False, "parent_score_ignored"),
     (True, "correct"), (True, "temperature_5pc"), (True, "distinct_draws")],
)
def test_simulated_beam_steps_prove_the_test(with_replacement: bool, bias: str) -> None:
    """The same test at the same trial count passes a correct re-implementation and rejects
    each biased one, each off by more than 1 % in total variation (computed exactly)."""
    probs = exact(joint_probs(TEMPERATURE), with_replacement)
    pi = joint_probs(TEMPERATURE * (1.05 if bias == "temperature_5pc" else 1.0),
                     with_scores=bias != "parent_score_ignored")
    distinct = not with_replacement or bias == "distinct_draws"
    biased = exact(pi, False) if bias == "distinct_draws" else exact(pi, with_replacement)
    if bias == "distinct_draws":  # sets of distinct candidates, as cells of the multiset test
        sets = outcomes(False)
        biased = np.array([biased[sets.index(c)] if c in sets else 0.0 for c in outcomes(True)])
    assert (tv_distance(biased, probs) > 0.01) == (bias != "correct")
    counts = count(simulate(pi, TRIALS, seed=5, distinct=distinct), with_replacement)
    assert chi_square_fit(counts, probs).rejects == (bias != "correct")
