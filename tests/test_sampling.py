"""normalize / sample against a plain, row-by-row PyTorch reference of algorithms.md §0."""

from __future__ import annotations

import math

import pytest
import torch
from mtad.sampling import normalize, sample

NEG_INF = -math.inf


def reference_normalize(
    logits: torch.Tensor, temperature: float, top_k: int, top_p: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """§0 written out per row in float64. Also returns, per row, whether a top-p prefix
    mass lies within float32 rounding of P (the kept set is then ambiguous)."""
    out = torch.full(logits.shape, NEG_INF, dtype=torch.float64)
    ambiguous = torch.zeros(logits.shape[0], dtype=torch.bool)
    for r, row in enumerate(logits.double()):
        values = row.tolist()
        vocab = len(values)
        if temperature == 0:
            best = max(range(vocab), key=lambda i: (values[i], -i))
            out[r, best] = 0.0
            continue
        scaled = [v / temperature for v in values]
        # Descending by value, ascending id among equal values.
        order = sorted(range(vocab), key=lambda i: (-scaled[i], i))
        kept = order[:top_k] if top_k > 0 else order
        if 0 < top_p < 1:
            m = max(scaled[i] for i in kept)
            weights = [math.exp(scaled[i] - m) for i in kept]
            total = sum(weights)
            prefix, mass = [], 0.0
            for i, w in zip(kept, weights, strict=True):
                prefix.append(i)
                mass += w / total
                if abs(mass - top_p) < 1e-5:
                    ambiguous[r] = True
                if mass >= top_p:
                    break
            kept = prefix
        m = max(scaled[i] for i in kept)
        lse = m + math.log(sum(math.exp(scaled[i] - m) for i in kept))
        for i in kept:
            out[r, i] = scaled[i] - lse
    return out, ambiguous


def assert_same_logprobs(got: torch.Tensor, want: torch.Tensor) -> None:
    assert got.dtype == torch.float32
    assert torch.equal(torch.isfinite(got), torch.isfinite(want)), "different kept sets"
    finite = torch.isfinite(want)
    torch.testing.assert_close(got[finite].double(), want[finite], atol=2e-5, rtol=1e-5)


PARAMS = [
    (0.0, 0, 1.0),
    (0.0, 5, 0.5),  # greedy ignores top-k / top-p
    (1.0, 0, 1.0),
    (0.7, 0, 1.0),
    (1.0, 10, 1.0),
    (1.0, 1, 1.0),
    (1.0, 0, 0.9),
    (1.0, 10, 0.9),  # the paper's defaults
    (1.3, 3, 0.5),
    (0.5, 0, 0.3),
    (1.0, 0, 1e-9),  # only the first token reaches nothing: still kept
    (1.0, 0, 0.0),  # P = 0 keeps all
    (1.0, 64, 1.0),  # K = V keeps all
    (1.0, 1000, 0.95),  # K > V keeps all
]


@pytest.mark.parametrize(("temperature", "top_k", "top_p"), PARAMS)
def test_normalize_matches_reference_on_random_logits(
    temperature: float, top_k: int, top_p: float
) -> None:
    g = torch.Generator().manual_seed(1234)
    logits = torch.randn(64, 64, generator=g) * 3
    got = normalize(logits, temperature, top_k, top_p)
    want, ambiguous = reference_normalize(logits, temperature, top_k, top_p)
    assert not ambiguous.any(), "pick another seed: a top-p boundary is within rounding"
    assert_same_logprobs(got, want)


# With ties, ten equal tokens after top-10 are 0.1 each and reach P = 0.9 exactly, where
# float rounding decides; the tie cases use P values no group of equal tokens can hit.
TIE_PARAMS = [p for p in PARAMS if p != (1.0, 10, 0.9)] + [(1.0, 10, 0.85), (1.0, 4, 0.6)]


@pytest.mark.parametrize(("temperature", "top_k", "top_p"), TIE_PARAMS)
def test_normalize_ties_keep_lowest_ids(temperature: float, top_k: int, top_p: float) -> None:
    # Small integer logits: many exact ties, also at the top-k / top-p boundaries.
    g = torch.Generator().manual_seed(7)
    logits = torch.randint(-3, 3, (64, 64), generator=g).float()
    got = normalize(logits, temperature, top_k, top_p)
    want, ambiguous = reference_normalize(logits, temperature, top_k, top_p)
    # A prefix mass within rounding of P leaves the kept set to float luck: skip such rows.
    assert ambiguous.sum() <= 4
    assert_same_logprobs(got[~ambiguous], want[~ambiguous])


@pytest.mark.parametrize("top_p", [0.3, 0.9, 0.99])
@pytest.mark.parametrize("scale", [0.3, 4.0])
def test_top_p_nucleus_larger_than_first_candidate_set(scale: float, top_p: float) -> None:
    # normalize finds the nucleus among the top 64, 512, ... tokens; flat rows (scale 0.3)
    # need thousands, peaked rows (scale 4) a few, and one batch mixes both.
    g = torch.Generator().manual_seed(99)
    logits = torch.randn(12, 5000, generator=g) * scale
    logits[0] *= 10  # a peaked row next to flat ones
    logits[1] = torch.randint(-2, 2, (5000,), generator=g).float() * 0.01  # big tie groups
    got = normalize(logits, 1.0, 0, top_p)
    want, ambiguous = reference_normalize(logits, 1.0, 0, top_p)
    # With ~1e-4 per token near P = 0.99, a prefix often lands within rounding of P.
    assert ambiguous.sum() <= 6
    assert_same_logprobs(got[~ambiguous], want[~ambiguous])


def test_greedy_is_one_hot_on_lowest_tied_argmax() -> None:
    logits = torch.tensor([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 5.0, 5.0], [-1.0, -2.0, -1.0, -3.0]])
    lp = normalize(logits, 0.0, 0, 1.0)
    assert lp.argmax(-1).tolist() == [1, 0, 0]
    assert (lp == 0).sum().item() == 3
    assert torch.isneginf(lp).sum().item() == 9


def test_top_p_prefix_reaching_mass() -> None:
    probs = torch.tensor([0.125, 0.5, 0.125, 0.25])
    logits = probs.log().unsqueeze(0)
    # Sorted: 0.5 (id 1), 0.25 (id 3), 0.125 (id 0), 0.125 (id 2).
    cases = {0.3: [1], 0.6: [1, 3], 0.74: [1, 3], 0.76: [1, 3, 0], 0.9: [1, 3, 0, 2]}
    for p, kept in cases.items():
        lp = normalize(logits, 1.0, 0, p)[0]
        assert sorted(torch.isfinite(lp).nonzero().flatten().tolist()) == sorted(kept), p
        # Renormalised over the kept tokens.
        want = probs[kept] / probs[kept].sum()
        torch.testing.assert_close(lp[kept].exp(), want)


def test_top_p_uses_mass_after_top_k() -> None:
    logits = torch.tensor([[0.4, 0.3, 0.2, 0.1]]).log()
    # Alone, P = 0.5 needs two tokens (0.4 < 0.5); after K = 2 the first has 4/7 >= 0.5.
    assert torch.isfinite(normalize(logits, 1.0, 0, 0.5)).sum().item() == 2
    assert torch.isfinite(normalize(logits, 1.0, 2, 0.5)).sum().item() == 1


def test_temperature_scales_before_filtering() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0]])
    lp = normalize(logits, 2.0, 0, 1.0)
    torch.testing.assert_close(lp, torch.log_softmax(logits / 2.0, -1))
    # At T = 0.25 the first token alone has mass > 0.9; at T = 4 it does not.
    assert torch.isfinite(normalize(logits, 0.25, 0, 0.9)).sum().item() == 1
    assert torch.isfinite(normalize(logits, 4.0, 0, 0.9)).sum().item() == 3


def test_masked_logits_and_1d_input() -> None:
    logits = torch.tensor([NEG_INF, 1.0, 0.5, NEG_INF, 0.0])
    lp = normalize(logits, 1.0, 0, 0.95)
    assert lp.shape == (5,)
    assert torch.isneginf(lp[[0, 3]]).all()
    torch.testing.assert_close(torch.logsumexp(lp, -1), torch.tensor(0.0))
    assert normalize(logits, 0.0).argmax().item() == 1


def test_rows_are_renormalised() -> None:
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(16, 1000, generator=g)
    for t, k, p in [(1.0, 50, 0.8), (0.8, 0, 0.5), (1.0, 7, 1.0)]:
        lse = torch.logsumexp(normalize(logits, t, k, p), -1)
        torch.testing.assert_close(lse, torch.zeros(16), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": math.nan}, "temperature"),
        ({"temperature": math.inf}, "temperature"),
        ({"top_k": -1}, "top_k"),
        ({"top_k": 2.5}, "top_k"),
        ({"top_p": -0.01}, "top_p"),
        ({"top_p": 1.01}, "top_p"),
        ({"top_p": math.nan}, "top_p"),
    ],
)
def test_invalid_parameters_name_the_parameter(kwargs: dict[str, float], name: str) -> None:
    args: dict[str, float] = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, **kwargs}
    with pytest.raises(ValueError, match=name):
        normalize(torch.zeros(1, 4), **args)  # type: ignore[arg-type]


def test_sample_greedy_rows_do_not_consume_randomness() -> None:
    logits = torch.tensor([[0.0, 2.0, 2.0, 1.0], [3.0, 0.0, 0.0, 0.0]])
    g = torch.Generator().manual_seed(5)
    state = g.get_state()
    assert sample(normalize(logits, 0.0), g).tolist() == [1, 0]
    assert torch.equal(g.get_state(), state)
    # top_k = 1 is one-hot too.
    assert sample(normalize(logits, 1.0, 1, 1.0), g).tolist() == [1, 0]
    assert sample(normalize(logits[0], 0.0), g).item() == 1


def test_sample_is_seeded_and_stays_in_kept_set() -> None:
    g = torch.Generator().manual_seed(11)
    logits = torch.randn(256, 100, generator=g)
    lp = normalize(logits, 1.0, 10, 0.9)
    a = sample(lp, torch.Generator().manual_seed(42))
    b = sample(lp, torch.Generator().manual_seed(42))
    assert torch.equal(a, b)
    assert a.dtype == torch.int64 and a.shape == (256,)
    assert torch.isfinite(lp.gather(1, a.unsqueeze(1))).all()


def test_sample_never_draws_removed_tokens_at_the_edges() -> None:
    # Removed tokens first and last in the vocabulary: the inverse-CDF draw must skip both.
    logits = torch.tensor([[NEG_INF, 0.0, 0.0, NEG_INF], [NEG_INF, NEG_INF, 1.0, 1.0]])
    lp = normalize(logits.repeat(2000, 1), 1.0, 0, 1.0)
    ids = sample(lp, torch.Generator().manual_seed(1)).view(2000, 2)
    assert set(ids[:, 0].tolist()) == {1, 2}
    assert set(ids[:, 1].tolist()) == {2, 3}
    assert sample(lp[0], torch.Generator().manual_seed(1)).dim() == 0


def test_sample_frequencies_follow_probabilities() -> None:
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05, 0.0])
    n = 40000
    lp = normalize(probs.log().expand(n, -1), 1.0, 0, 1.0)
    counts = torch.bincount(sample(lp, torch.Generator().manual_seed(0)), minlength=5)
    freq = counts.double() / n
    # 4 standard deviations of a binomial proportion at n = 40000 is under 0.01.
    torch.testing.assert_close(freq, probs.double(), atol=0.01, rtol=0)
    assert counts[4].item() == 0
