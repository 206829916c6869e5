"""gamma "auto" (csrc/decode/draft_length.h): the controller's choice against its definition,
its fallback to AR steps and its probes; decoders under it keep greedy output equal to AR's."""

from __future__ import annotations

import pytest
from decoding import GREEDY, SAMPLED, run

import mtad_ext
from mtad_ext import DraftLength, InputError

# A cost table shaped like a CPU's: a T-token target pass costs more as T grows.
VERIFY = [0.010, 0.011, 0.012, 0.0135, 0.015, 0.017, 0.019, 0.021, 0.023]
DRAFT = 0.001


def expected_rate(a: float, g: int) -> float:
    """Expected emitted tokens per second at gamma g: E(g) / (g d + t(g)), E(g) = sum a^i."""
    return sum(a**i for i in range(g + 1)) / (g * DRAFT + VERIFY[g])


def settle(c: DraftLength, gamma: int, accepted: int, steps: int = 60) -> None:
    for _ in range(steps):
        c.observe(gamma, accepted)


def test_rate_is_its_definition() -> None:
    c = DraftLength(VERIFY, DRAFT)
    assert c.max_gamma == len(VERIFY) - 1
    assert c.acceptance == pytest.approx(0.5)
    for g in range(len(VERIFY)):
        assert c.rate(g) == pytest.approx(expected_rate(0.5, g))


@pytest.mark.parametrize("accepted_of_4", [0, 1, 2, 3, 4])
def test_acceptance_counts_the_tokens_judged(accepted_of_4: int) -> None:
    """A chain of 4 judged up to its first rejection: a accepted of min(a + 1, 4) judged."""
    c = DraftLength(VERIFY, DRAFT)
    settle(c, 4, accepted_of_4, steps=300)
    assert c.acceptance == pytest.approx(accepted_of_4 / min(accepted_of_4 + 1, 4), abs=1e-6)


def test_choice_maximises_the_rate() -> None:
    for accepted in range(5):
        c = DraftLength(VERIFY, DRAFT)
        settle(c, 4, accepted)
        a = c.acceptance
        best = max(range(len(VERIFY)), key=lambda g: expected_rate(a, g))
        if best > 0:
            assert c.next() == best, (accepted, a)


def test_full_acceptance_drafts_the_longest() -> None:
    c = DraftLength([0.01] * 9, DRAFT)  # a flat verify cost: every extra token is nearly free
    settle(c, 8, 8)
    assert c.next() == 8


def test_no_acceptance_falls_back_to_ar_and_probes_less_and_less() -> None:
    c = DraftLength(VERIFY, DRAFT)
    settle(c, 4, 0)
    waits = []
    for _ in range(4):
        n = 0
        while (g := c.next()) == 0:
            n += 1
        assert g == 1  # a probe: the shortest draft
        c.observe(1, 0)  # it fails
        waits.append(n)
    assert waits == [7, 15, 31, 63]
    waits = 0
    while c.next() == 0:
        waits += 1
    assert waits == 63  # capped at 64 steps between probes


def test_reset_forgets_the_sequence() -> None:
    c = DraftLength(VERIFY, DRAFT)
    settle(c, 4, 0)
    c.reset()
    assert c.acceptance == pytest.approx(0.5)
    assert [c.next() for _ in range(3)] == [DraftLength(VERIFY, DRAFT).next()] * 3


def test_a_probe_that_passes_resumes_drafting() -> None:
    c = DraftLength(VERIFY, DRAFT)
    settle(c, 4, 0)
    while c.next() == 0:
        pass
    for _ in range(6):  # the text turned predictable
        c.observe(1, 1)
    assert c.next() > 0


def test_bad_table_raises() -> None:
    with pytest.raises(InputError, match="gamma 0 and 1"):
        DraftLength([0.01], DRAFT)


@pytest.mark.parametrize("method", ["sps", "mtad", "mtad-tree"])
def test_greedy_auto_equals_greedy_ar(tiny: dict, method: str) -> None:
    target, draft = tiny["llama_gqa_tied"], tiny["opt_pre_ln"]
    prompt = [3, 14, 15, 92]
    ar = run(mtad_ext.Decoder(target, method="ar", capacity=128, **GREEDY), prompt, 40)
    dec = mtad_ext.Decoder(target, draft, method=method, gamma="auto", max_gamma=5, width=3, capacity=128,
                           **GREEDY)
    assert dec.gamma == "auto"
    dec.start(prompt)
    while len(dec.tokens) < len(prompt) + 40:
        dec.step()
        s = dec.last_stats
        assert s["drafted"] <= (5 * 3 if method == "mtad-tree" else 5)
        assert s["emitted"] == s["accepted"] + 1
    assert dec.tokens[len(prompt):][:40] == ar[:40]


def test_auto_runs_to_the_capacity_it_was_given(tiny: dict) -> None:
    """The caches are sized for max_gamma: a sequence reaches its full capacity whatever
    gamma each step chose, then the next step is refused."""
    target, draft = tiny["llama_gqa_tied"], tiny["opt_pre_ln"]
    dec = mtad_ext.Decoder(target, draft, method="sps", gamma="auto", capacity=40, seed=1, **SAMPLED)
    dec.start([1, 2, 3])
    while len(dec.tokens) < 40:
        dec.step()
    with pytest.raises(InputError, match="capacity"):
        dec.step()


def test_auto_sampling_repeats_for_a_seed(tiny: dict) -> None:
    """The cost table is measured once per model, so decoders on the same models repeat; a
    reused decoder starts each sequence afresh, whatever the one before taught it."""
    target, draft = tiny["llama_gqa_tied"], tiny["opt_pre_ln"]

    def gen(seed: int) -> list[int]:
        dec = mtad_ext.Decoder(target, draft, method="sps", gamma="auto", seed=seed, capacity=128, **SAMPLED)
        return run(dec, [1, 2], 30)

    first = gen(5)
    assert gen(5) == first
    reused = mtad_ext.Decoder(target, draft, method="sps", gamma="auto", seed=5, capacity=128, **SAMPLED)
    run(reused, [7, 7, 7, 7], 40)  # another sequence first
    assert run(reused, [1, 2], 30) == first


@pytest.mark.parametrize(("kw", "message"), [
    (dict(gamma="often"), "gamma must be a number >= 1 or \"auto\""),
    (dict(gamma=0), "gamma must be >= 1"),
    (dict(gamma="auto", max_gamma=0), r"max_gamma must be in \[1, 32\]"),
    (dict(gamma="auto", max_gamma=33), r"max_gamma must be in \[1, 32\]"),
])  # fmt: skip
def test_bad_gamma_raises(tiny: dict, kw: dict, message: str) -> None:
    m = tiny["llama_gqa_tied"]
    with pytest.raises(InputError, match=message):
        mtad_ext.Decoder(m, m, method="sps", **kw)


def test_forward_seconds_is_measured_once(tiny: dict) -> None:
    m = tiny["llama_gqa_tied"]
    first = m.forward_seconds(3)
    assert first > 0
    assert m.forward_seconds(3) == first
