"""The goodness-of-fit test every distribution test uses, and its power.

Pearson's chi-square of observed counts against exact probabilities. Cells whose expected
count is below MIN_EXPECTED are pooled into one cell (the chi-square approximation needs
it); the pooled mass is kept small by the tests (asserted), because pooling can hide a
bias inside the pooled cells: TV over the pooled cells >= TV - (pooled exact mass).

Power. Under a sampler whose distribution q is off from the exact p, Pearson's statistic
is approximately noncentral chi-square with df = cells - 1 and noncentrality
lambda = n * chi2(q || p) = n * sum (q - p)^2 / p. By Cauchy-Schwarz (sum p = 1),
(sum |q - p|)^2 <= sum (q - p)^2 / p, so lambda >= 4 n TV^2 whatever the shape of the
bias. power(n, df, tv) is P(noncentral chi-square(df, 4 n tv^2) > critical value at
ALPHA): a lower bound on the chance that a sampler off by tv in total variation is
caught. Each test asserts that bound is >= POWER for a 1 % bias (less its pooled mass).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import chi2, ncx2

ALPHA = 1e-3  # false-alarm rate of one test (the tests are seeded: the outcome is fixed)
POWER = 0.99  # the least chance to catch a bias of TV_BIAS
TV_BIAS = 0.01
MIN_EXPECTED = 5.0


@dataclass
class Fit:
    statistic: float
    df: int
    p_value: float
    pooled_mass: float  # exact probability of the pooled cells

    @property
    def rejects(self) -> bool:
        return self.p_value < ALPHA


def chi_square_fit(counts: np.ndarray, probs: np.ndarray) -> Fit:
    """Pearson's test of `counts` (any shape) against the exact `probs` (same shape, sum 1).
    A count in a cell of exact probability 0 rejects outright."""
    counts = np.asarray(counts, dtype=np.float64).ravel()
    probs = np.asarray(probs, dtype=np.float64).ravel()
    assert counts.shape == probs.shape
    assert abs(probs.sum() - 1.0) < 1e-6, probs.sum()
    n = counts.sum()
    if (counts[probs <= 0] > 0).any():
        return Fit(float("inf"), 0, 0.0, 0.0)
    expected = n * probs
    small = expected < MIN_EXPECTED
    obs = np.append(counts[~small], counts[small].sum())
    exp = np.append(expected[~small], expected[small].sum())
    keep = exp > 0
    obs, exp = obs[keep], exp[keep]
    stat = float(((obs - exp) ** 2 / exp).sum())
    df = int(keep.sum()) - 1
    return Fit(stat, df, float(chi2.sf(stat, df)), float(probs[small].sum()))


def power(n: int, df: int, tv: float) -> float:
    """Lower bound on the chance the test at ALPHA rejects a sampler off by `tv`."""
    return float(ncx2.sf(chi2.isf(ALPHA, df), df, 4.0 * n * tv * tv))


def assert_powerful(fit: Fit, n: int) -> None:
    """The trial count detects a TV_BIAS bias (less what pooling can hide) with >= POWER."""
    assert fit.pooled_mass < 1e-3, f"pooled {fit.pooled_mass:.2e} of the mass: too many rare cells"
    got = power(n, fit.df, TV_BIAS - fit.pooled_mass)
    assert got >= POWER, f"{n} trials over {fit.df + 1} cells: power {got:.4f} < {POWER}"


def tv_distance(p: np.ndarray, q: np.ndarray) -> float:
    return 0.5 * float(np.abs(np.asarray(p, np.float64) - np.asarray(q, np.float64)).sum())


def chi_square(counts: list[int], probs: list[float]) -> float:
    """Pearson's statistic of counts against exact probabilities (no pooling)."""
    total = sum(counts)
    return sum((c - total * p) ** 2 / (total * p) for c, p in zip(counts, probs, strict=True))
