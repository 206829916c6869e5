"""ops.normalize / ops.sample against plain references of algorithms.md §0 and of
ops/sampling.h, drawing with tests/reference/rng.py's replica of the counter-based rng (ops/rng.h)."""

from __future__ import annotations

import math

import pytest
import torch
from reference.rng import rng_uniform
from reference.sampling import normalize as reference_normalize
from reference.sampling import random_logits
from reference.sampling import sample as reference_sample
from torch import Tensor

import mtad_ext

ops = mtad_ext.ops
NEG_INF = -math.inf


def assert_same_logprobs(got: Tensor, want: Tensor) -> None:
    assert got.dtype == torch.float32 and got.shape == want.shape
    assert torch.equal(torch.isfinite(got), torch.isfinite(want)), "different kept sets"
    finite = torch.isfinite(want)
    torch.testing.assert_close(got[finite].double(), want[finite], atol=1e-5, rtol=1e-5)


def assert_log_distributions(lp: Tensor) -> None:
    """Every row: at least one finite entry, logsumexp over the finite entries is 0."""
    assert torch.isfinite(lp).any(dim=1).all()
    assert not torch.isnan(lp).any() and not torch.isposinf(lp).any()
    lse = torch.logsumexp(lp.double(), dim=1)
    torch.testing.assert_close(lse, torch.zeros_like(lse), atol=1e-5, rtol=0)


# ---- normalize ----------------------------------------------------------------------------

# (temperature, top_k, top_p)
PARAMS = [
    (0.0, 0, 1.0),
    (0.0, 5, 0.5),  # greedy ignores top-k / top-p
    (1.0, 0, 1.0),
    (0.7, 0, 1.0),
    (1.0, 10, 1.0),
    (1.0, 1, 1.0),  # top-k cuts to one token
    (1.0, 0, 0.9),
    (1.0, 10, 0.9),  # the paper's defaults
    (1.3, 3, 0.5),
    (0.5, 0, 0.3),
    (1.0, 0, 1e-9),  # the first token alone exceeds P: still exactly one kept
    (1.0, 0, 0.0),  # P = 0 keeps all
    (1.0, 100, 1.0),  # K = V keeps all
    (1.0, 1000, 0.95),  # K > V: top-p alone
    (2.0, 40, 0.99),
]


@pytest.mark.parametrize(("temperature", "top_k", "top_p"), PARAMS)
def test_normalize_matches_reference(temperature: float, top_k: int, top_p: float) -> None:
    logits = random_logits(48, 100, seed=1234)
    got = ops.normalize(logits, temperature, top_k, top_p)
    want, ambiguous = reference_normalize(logits, temperature, top_k, top_p)
    assert not ambiguous.any(), "pick another seed: a top-p boundary is within rounding"
    assert_same_logprobs(got, want)
    assert_log_distributions(got)


@pytest.mark.parametrize(("temperature", "top_k", "top_p"), PARAMS)
def test_normalize_with_removed_tokens(temperature: float, top_k: int, top_p: float) -> None:
    # -inf already present (masked tokens), at the edges of the vocabulary too.
    logits = random_logits(48, 100, seed=77)
    g = torch.Generator().manual_seed(5)
    logits[torch.rand(48, 100, generator=g) < 0.5] = NEG_INF
    logits[:, 0] = NEG_INF
    logits[:, -1] = NEG_INF
    logits[0, :-3] = NEG_INF  # only two finite tokens: fewer than K
    got = ops.normalize(logits, temperature, top_k, top_p)
    want, ambiguous = reference_normalize(logits, temperature, top_k, top_p)
    assert not ambiguous.any()
    assert_same_logprobs(got, want)
    assert torch.isneginf(got[torch.isneginf(logits)]).all(), "a removed token came back"
    assert_log_distributions(got)


TIE_PARAMS = [(0.0, 0, 1.0), (1.0, 4, 1.0), (1.0, 7, 1.0), (0.5, 10, 1.0), (1.0, 10, 0.85),
              (1.0, 0, 0.6), (1.0, 4, 0.6), (1.0, 1, 1.0)]


@pytest.mark.parametrize(("temperature", "top_k", "top_p"), TIE_PARAMS)
def test_normalize_ties_keep_lowest_ids(temperature: float, top_k: int, top_p: float) -> None:
    # Small integer logits: many exact ties, also at the top-k / top-p boundaries.
    g = torch.Generator().manual_seed(7)
    logits = torch.randint(-3, 3, (64, 64), generator=g).float()
    got = ops.normalize(logits, temperature, top_k, top_p)
    want, ambiguous = reference_normalize(logits, temperature, top_k, top_p)
    # With equal weights a prefix can land exactly on P: those rows are float luck.
    assert ambiguous.sum() <= 4
    assert_same_logprobs(got[~ambiguous], want[~ambiguous])


def test_greedy_is_one_hot_on_lowest_tied_argmax() -> None:
    logits = torch.tensor([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 5.0, 5.0], [-1.0, -2.0, -1.0, NEG_INF]])
    lp = ops.normalize(logits, 0.0, 0, 1.0)
    assert lp.argmax(-1).tolist() == [1, 0, 0]
    assert (lp == 0).sum().item() == 3
    assert torch.isneginf(lp).sum().item() == 9


def test_top_k_boundary_ties_go_to_lower_ids() -> None:
    logits = torch.tensor([[0.0, 2.0, 1.0, 2.0, 1.0, 1.0]])
    lp = ops.normalize(logits, 1.0, 3, 1.0)[0]
    # Sorted: 2 (id 1), 2 (id 3), then the tie 1 (ids 2, 4, 5): id 2 wins the last place.
    assert torch.isfinite(lp).nonzero().flatten().tolist() == [1, 2, 3]


def test_top_p_keeps_smallest_prefix_reaching_mass() -> None:
    probs = torch.tensor([0.125, 0.5, 0.125, 0.25])
    logits = probs.log().unsqueeze(0)
    # Sorted: 0.5 (id 1), 0.25 (id 3), 0.125 (id 0), 0.125 (id 2).
    cases = {0.3: [1], 0.6: [1, 3], 0.74: [1, 3], 0.76: [1, 3, 0], 0.9: [1, 3, 0, 2]}
    for p, kept in cases.items():
        lp = ops.normalize(logits, 1.0, 0, p)[0]
        assert sorted(torch.isfinite(lp).nonzero().flatten().tolist()) == sorted(kept), p
        want = probs[kept] / probs[kept].sum()
        torch.testing.assert_close(lp[kept].exp(), want)


def test_top_p_measures_mass_after_top_k() -> None:
    logits = torch.tensor([[0.4, 0.3, 0.2, 0.1]]).log()
    # Alone, P = 0.5 needs two tokens (0.4 < 0.5); after K = 2 the first has 4/7 >= 0.5.
    assert torch.isfinite(ops.normalize(logits, 1.0, 0, 0.5)).sum().item() == 2
    assert torch.isfinite(ops.normalize(logits, 1.0, 2, 0.5)).sum().item() == 1


def test_p_zero_and_one_and_large_k_keep_all() -> None:
    logits = random_logits(8, 50, seed=3)
    want = torch.log_softmax(logits / 0.8, dim=-1)
    for k, p in [(0, 0.0), (0, 1.0), (50, 1.0), (51, 0.0), (10**9, 1.0)]:
        torch.testing.assert_close(ops.normalize(logits, 0.8, k, p), want, atol=1e-5, rtol=0)


@pytest.mark.parametrize("top_p", [0.3, 0.9, 0.99])
@pytest.mark.parametrize("scale", [0.3, 4.0])
def test_top_p_over_a_large_vocabulary(scale: float, top_p: float) -> None:
    # Flat rows (scale 0.3) need thousands of tokens, peaked rows a few; the CPU kernel
    # sorts 64, 512, 4096 ... candidates until the nucleus fits.
    logits = random_logits(6, 5000, seed=99, scale=scale)
    logits[0] *= 10
    got = ops.normalize(logits, 1.0, 0, top_p)
    want, ambiguous = reference_normalize(logits, 1.0, 0, top_p)
    assert ambiguous.sum() <= 1
    assert_same_logprobs(got[~ambiguous], want[~ambiguous])
    assert_log_distributions(got)


@pytest.mark.parametrize(("top_k", "top_p"), [(40, 1.0), (40, 0.9), (0, 0.9), (150, 0.999)])
def test_top_k_reaching_far_below_the_maximum(top_k: int, top_p: float) -> None:
    # Spread rows: the top-k boundary lies more than 32 below the maximum, past the
    # nearby tokens the CPU kernel gathers first.
    logits = random_logits(16, 200, seed=31, scale=40.0)
    got = ops.normalize(logits, 1.0, top_k, top_p)
    want, ambiguous = reference_normalize(logits, 1.0, top_k, top_p)
    assert not ambiguous.any()
    assert_same_logprobs(got, want)


def test_rows_without_a_finite_maximum_fall_back_to_greedy() -> None:
    logits = torch.tensor(
        [
            [NEG_INF, NEG_INF, NEG_INF],  # nothing: id 0
            [0.0, math.inf, 1.0],  # +inf dominates
            [0.0, math.nan, math.nan],  # NaN is the maximum, as in torch.argmax
        ]
    )
    for t, k, p in [(1.0, 0, 1.0), (0.5, 2, 0.9), (0.0, 0, 1.0)]:
        lp = ops.normalize(logits, t, k, p)
        assert (lp == 0).nonzero().tolist() == [[0, 0], [1, 1], [2, 1]]
        assert torch.isneginf(lp).sum().item() == 6


def test_normalize_is_float32_contiguous_and_accepts_views() -> None:
    logits = random_logits(10, 30, seed=8).t()  # non-contiguous [30, 10]
    got = ops.normalize(logits, 1.0, 3, 0.8)
    want = ops.normalize(logits.contiguous(), 1.0, 3, 0.8)
    assert got.is_contiguous() and got.dtype == torch.float32
    assert torch.equal(got, want)
    assert ops.normalize(torch.zeros(0, 5), 1.0, 0, 1.0).shape == (0, 5)


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((-0.1, 0, 1.0), "temperature"),
        ((math.nan, 0, 1.0), "temperature"),
        ((math.inf, 0, 1.0), "temperature"),
        ((1e300, 0, 1.0), "temperature"),
        ((1.0, -1, 1.0), "top_k"),
        ((1.0, 0, -0.01), "top_p"),
        ((1.0, 0, 1.01), "top_p"),
        ((1.0, 0, math.nan), "top_p"),
    ],
)
def test_normalize_rejects_bad_parameters(args: tuple[float, int, float], match: str) -> None:
    with pytest.raises(RuntimeError, match=match):
        ops.normalize(torch.zeros(2, 4), *args)


@pytest.mark.parametrize(
    ("logits", "match"),
    [
        (torch.zeros(4), r"logits must be \[R, V\]"),
        (torch.zeros(2, 2, 2), r"logits must be \[R, V\]"),
        (torch.zeros(2, 4, dtype=torch.float64), "logits must be float32"),
        (torch.zeros(2, 4, dtype=torch.float16), "logits must be float32"),
    ],
)
def test_normalize_rejects_bad_logits(logits: Tensor, match: str) -> None:
    with pytest.raises(RuntimeError, match=match):
        ops.normalize(logits, 1.0, 0, 1.0)


# ---- sample -------------------------------------------------------------------------------


@pytest.mark.parametrize(("temperature", "top_k", "top_p"), [(1.0, 0, 1.0), (1.0, 10, 0.9), (0.6, 0, 0.8)])
@pytest.mark.parametrize(("seed", "offset"), [(0, 0), (42, 1000), (2**64 - 1, 2**63)])
def test_sample_matches_reference(
    temperature: float, top_k: int, top_p: float, seed: int, offset: int
) -> None:
    lp = ops.normalize(random_logits(300, 40, seed=11), temperature, top_k, top_p)
    got = ops.sample(lp, seed, offset)
    want, ambiguous = reference_sample(lp, seed, offset)
    assert got.dtype == torch.int64 and got.shape == (300,)
    assert ambiguous.sum() <= 1
    assert torch.equal(got[~ambiguous], want[~ambiguous])
    assert torch.isfinite(lp.gather(1, got.unsqueeze(1))).all(), "drew a removed token"


def test_sample_is_deterministic_and_row_r_uses_counter_offset_plus_r() -> None:
    lp = ops.normalize(random_logits(64, 30, seed=4), 1.0, 0, 1.0)
    a = ops.sample(lp, 7, 100)
    assert torch.equal(a, ops.sample(lp, 7, 100))
    assert not torch.equal(a, ops.sample(lp, 8, 100))
    for r in (0, 5, 63):
        assert ops.sample(lp[r : r + 1], 7, 100 + r).item() == a[r].item()


def test_sample_one_hot_rows_give_their_token() -> None:
    logits = random_logits(32, 50, seed=6)
    lp = ops.normalize(logits, 0.0, 0, 1.0)
    for seed in range(5):
        assert torch.equal(ops.sample(lp, seed, seed * 1000), logits.argmax(-1))


def test_sample_never_draws_removed_tokens_at_the_edges() -> None:
    logits = torch.tensor([[NEG_INF, 0.0, 0.0, NEG_INF], [NEG_INF, NEG_INF, 1.0, 1.0]])
    lp = ops.normalize(logits.repeat(2000, 1), 1.0, 0, 1.0)
    ids = ops.sample(lp, 1, 0).view(2000, 2)
    assert set(ids[:, 0].tolist()) == {1, 2}
    assert set(ids[:, 1].tolist()) == {2, 3}


def test_sample_row_without_mass_gives_minus_one() -> None:
    lp = torch.tensor([[NEG_INF, NEG_INF], [NEG_INF, 0.0]])
    assert ops.sample(lp, 0, 0).tolist() == [-1, 1]


def test_sample_frequencies_follow_probabilities() -> None:
    """20000 draws (counters 0..19999 of one seed) from a 6-token distribution. With scipy:
    Pearson's chi-square over the 5 tokens with mass, p-value > 1e-3. Without it: each
    frequency within 5 binomial standard deviations sqrt(p (1 - p) / n) of p."""
    probs = torch.tensor([0.4, 0.25, 0.2, 0.1, 0.05, 0.0])
    n = 20000
    lp = ops.normalize(probs.log().expand(n, -1).contiguous(), 1.0, 0, 1.0)
    counts = torch.bincount(ops.sample(lp, 12345, 0), minlength=6)
    assert counts[5].item() == 0
    expected = probs[:5].double() * n
    try:
        from scipy.stats import chisquare
    except ImportError:
        sd = torch.sqrt(probs[:5].double() * (1 - probs[:5].double()) / n)
        assert ((counts[:5].double() / n - probs[:5].double()).abs() <= 5 * sd).all()
    else:
        assert chisquare(counts[:5].double().numpy(), expected.numpy()).pvalue > 1e-3


def test_sample_rejects_bad_input() -> None:
    with pytest.raises(RuntimeError, match="logprobs must be float32"):
        ops.sample(torch.zeros(2, 3, dtype=torch.float64), 0, 0)
    with pytest.raises(RuntimeError, match=r"logprobs must be \[R, V\]"):
        ops.sample(torch.zeros(3), 0, 0)
    with pytest.raises(RuntimeError, match="no columns"):
        ops.sample(torch.zeros(2, 0), 0, 0)
    with pytest.raises(TypeError):
        ops.sample(torch.zeros(2, 3), -1, 0)  # seeds are unsigned 64-bit
    assert ops.sample(torch.zeros(0, 3), 0, 0).shape == (0,)


def test_torch_library_sample_takes_int64_seeds() -> None:
    lp = ops.normalize(random_logits(16, 20, seed=9), 1.0, 0, 1.0)
    # The schema's int is int64: seed -1 is the uint64 seed 2^64 - 1.
    assert torch.equal(torch.ops.mtad.sample(lp, -1, 5), ops.sample(lp, 2**64 - 1, 5))


# ---- CUDA against the CPU reference ---------------------------------------------------------


CUDA_CASES = [
    # (rows, vocab, scale, temperature, top_k, top_p)
    (16, 100, 3.0, 0.0, 0, 1.0),
    (16, 100, 3.0, 1.0, 0, 1.0),
    (16, 100, 3.0, 1.0, 10, 0.9),
    (16, 100, 3.0, 0.7, 1, 1.0),
    (16, 100, 3.0, 1.0, 0, 1e-9),
    (8, 50000, 3.0, 1.0, 50, 0.9),
    (8, 50000, 3.0, 1.0, 0, 0.9),  # nucleus within 2^b of the max: shared-memory sort
    (8, 50000, 0.05, 1.0, 0, 0.9),  # flat rows: nucleus of ~40k tokens, radix select
    (8, 50000, 0.05, 1.0, 20000, 1.0),  # large top-k: radix select by count
    (8, 50000, 0.05, 1.0, 20000, 0.5),
    (4, 152064, 3.0, 0.8, 0, 0.95),
]


@pytest.mark.cuda
@pytest.mark.parametrize(("rows", "vocab", "scale", "temperature", "top_k", "top_p"), CUDA_CASES)
def test_cuda_normalize_and_sample_match_cpu(
    rows: int, vocab: int, scale: float, temperature: float, top_k: int, top_p: float
) -> None:
    logits = random_logits(rows, vocab, seed=21, scale=scale)
    logits[0, ::7] = NEG_INF
    cpu = ops.normalize(logits, temperature, top_k, top_p)
    gpu = ops.normalize(logits.cuda(), temperature, top_k, top_p).cpu()
    # Sums run in another order on the GPU: a top-p boundary within rounding may differ.
    same = torch.isfinite(cpu).eq(torch.isfinite(gpu)).all(dim=1)
    assert same.sum() >= rows - 1
    finite = torch.isfinite(cpu[same])
    torch.testing.assert_close(gpu[same][finite], cpu[same][finite], atol=1e-5, rtol=1e-5)
    assert torch.equal(ops.sample(cpu, 3, 17), ops.sample(cpu.cuda(), 3, 17).cpu())


@pytest.mark.cuda
def test_cuda_normalize_ties_match_cpu() -> None:
    # Whole rows of equal logits: the tie order (lowest id) decides every boundary, and
    # 10000 tied tokens do not fit the shared-memory path.
    logits = torch.zeros(4, 20000)
    logits[1, 5000:] = 1.0
    logits[2] = torch.randint(-2, 2, (20000,), generator=torch.Generator().manual_seed(1)).float()
    for t, k, p in [(0.0, 0, 1.0), (1.0, 10000, 1.0), (1.0, 7, 1.0), (1.0, 0, 0.3), (1.0, 9999, 0.5)]:
        cpu = ops.normalize(logits, t, k, p)
        gpu = ops.normalize(logits.cuda(), t, k, p).cpu()
        assert torch.equal(torch.isfinite(cpu), torch.isfinite(gpu)), (t, k, p)
        torch.testing.assert_close(gpu, cpu, atol=1e-5, rtol=1e-5)


def test_uniform_never_reaches_one() -> None:
    """Seed 0, counter 5186239 has all top bits set: the draw must stay below 1, or a token of
    negligible probability would be sampled (and Gumbel noise would be +inf)."""
    logprobs = torch.tensor([[0.0, -100.0]])
    assert int(mtad_ext.ops.sample(logprobs, 0, 5186239)[0]) == 0
    assert rng_uniform(0, [5186239])[0] < 1.0
