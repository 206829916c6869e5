"""ADED's automatic node budget (csrc/decode/tree_budget.h): the controller's choice against
its definition, what a step teaches it (only the ranks it verified), its AR fallback and its
probes; decoders under it keep greedy output equal to AR's and repeat a seed's samples."""

from __future__ import annotations

import pytest
from decoding import GREEDY, SAMPLED, run

import mtad_ext
from mtad_ext import AdedParams, InputError, TreeBudget, TrigramTable

# A CPU-shaped cost table for 0..16 rows: each extra row costs 8 % of a one-row pass.
VERIFY = [0.010 * (1 + 0.08 * r) for r in range(17)]
DECAY, PRIOR_TRIES = 0.9, 0.5


def prior_hits(n: int) -> list[float]:
    """The starting guess: rank i accepted with probability 0.5 / (1 + i), weight half a step."""
    return [PRIOR_TRIES * 0.5 / (1 + i) for i in range(n)]


def reference_rate(p: list[float], budget: int, extra: int) -> float:
    """(1 + sum of the first `budget` rank acceptances) / cost(budget + extra rows)."""
    return (1 + sum(p[:budget])) / VERIFY[budget + extra]


def test_rate_is_its_definition_after_observations() -> None:
    c = TreeBudget(VERIFY, 12)
    hits, tries = prior_hits(12), [PRIOR_TRIES] * 12
    steps = [(12, [True, True, False, True] + [False] * 8), (4, [True, False, False, False]),
             (8, [True, True, True]), (0, [])]  # fmt: skip
    for budget, accepted in steps:
        c.observe(budget, accepted)
        # Only the ranks the step verified move: the first min(budget, trie size).
        for i in range(min(budget, len(accepted))):
            hits[i] = DECAY * hits[i] + accepted[i]
            tries[i] = DECAY * tries[i] + 1
        p = [h / t for h, t in zip(hits, tries, strict=True)]
        for i in range(12):
            assert c.acceptance(i) == pytest.approx(p[i])
        for budget in range(13):
            for extra in (0, 3):
                assert c.rate(budget, extra) == pytest.approx(reference_rate(p, budget, extra))


def settle(c: TreeBudget, budget: int, accepted: list[bool], steps: int = 80) -> None:
    for _ in range(steps):
        c.observe(budget, accepted)


def test_choice_maximises_the_rate() -> None:
    for accepted_ranks in ([], [0], [0, 1], [0, 1, 2, 5], list(range(12))):
        c = TreeBudget(VERIFY, 12)
        settle(c, 12, [i in accepted_ranks for i in range(12)])
        for extra in (0, 2):
            rates = [c.rate(b, extra) for b in range(13)]
            best = max(range(13), key=rates.__getitem__)
            c2 = TreeBudget(VERIFY, 12)
            settle(c2, 12, [i in accepted_ranks for i in range(12)])
            assert c2.next(extra) == best, (accepted_ranks, extra, rates)


def test_starts_from_the_prior() -> None:
    """The first choice maximises the starting guess's rate: a few nodes where each row costs
    (a CPU), the whole budget where rows are nearly free (a GPU)."""
    p = [h / PRIOR_TRIES for h in prior_hits(12)]
    best = max(range(13), key=lambda b: reference_rate(p, b, 0))
    assert 0 < best < 12
    assert TreeBudget(VERIFY, 12).next() == best
    assert TreeBudget([0.01] * 17, 12).next() == 12


def test_no_acceptance_falls_back_to_ar_and_probes_less_and_less() -> None:
    c = TreeBudget(VERIFY, 12)
    settle(c, 12, [False] * 12)
    waits = []
    for _ in range(4):
        n = 0
        while (b := c.next()) == 0:
            n += 1
        assert b == 1  # a probe: one node
        c.observe(1, [False])  # it fails
        waits.append(n)
    assert waits == [7, 15, 31, 63]


def test_probe_of_a_larger_budget_learns_the_ranks_left_out() -> None:
    """Settled on 2 nodes while deeper ranks looked useless, a probe at twice the budget
    verifies ranks 2 and 3; if they are accepted now, the choice grows."""
    c = TreeBudget(VERIFY, 12)
    settle(c, 12, [True, True] + [False] * 10)
    budgets = [c.next() for _ in range(8)]
    assert budgets == [2] * 7 + [4]  # the 8th step is a probe
    for _ in range(10):
        c.observe(4, [True, True, True, True])
    assert c.next() == 4


def test_reset_forgets_the_sequence() -> None:
    c = TreeBudget(VERIFY, 12)
    settle(c, 12, [False] * 12)
    c.reset()
    assert c.acceptance(5) == pytest.approx(prior_hits(12)[5] / PRIOR_TRIES)
    assert c.next() == TreeBudget(VERIFY, 12).next()


def test_bad_use_raises() -> None:
    with pytest.raises(InputError, match="cost for 0..12 nodes"):
        TreeBudget(VERIFY[:5], 12)
    with pytest.raises(InputError, match="budget must be in"):
        TreeBudget(VERIFY, 12).rate(13)
    with pytest.raises(InputError, match="max_nodes must be a number or \"auto\""):
        AdedParams(max_nodes="many")


def test_params_say_auto() -> None:
    p = AdedParams(max_nodes="auto")
    assert p.auto_nodes and p.max_nodes == AdedParams().max_nodes
    assert not AdedParams(max_nodes=9).auto_nodes
    assert "max_nodes='auto'" in repr(p)


def target_text_table(model: mtad_ext.Model, prompt: list[int], n: int) -> tuple[list[int], TrigramTable]:
    ar = run(mtad_ext.Decoder(model, method="ar", capacity=256, **GREEDY), prompt, n)[:n]
    return ar, TrigramTable.build([prompt + ar], vocab_size=model.config["vocab_size"])


def test_auto_budget_drafts_within_its_bound_and_equals_ar(tiny: dict) -> None:
    model = tiny["llama_gqa_tied"]
    prompt = [11, 22, 33]
    ar, table = target_text_table(model, prompt, 60)
    dec = mtad_ext.Decoder(model, method="aded", capacity=256, **GREEDY)
    dec.set_trigram_table(table)
    dec.aded_params = AdedParams(max_nodes="auto", adapt=False)
    dec.start(prompt)
    sizes = []
    while len(dec.tokens) < len(prompt) + 60:
        dec.step()
        sizes.append(dec.last_stats["drafted"])
    assert dec.tokens[len(prompt):][:60] == ar
    assert max(sizes) <= AdedParams().max_nodes


def test_auto_budget_sampling_repeats_for_a_seed(tiny: dict) -> None:
    model = tiny["opt_pre_ln"]
    own = run(mtad_ext.Decoder(model, method="ar", capacity=256, seed=3, **SAMPLED), [3, 1, 4], 80)
    table = TrigramTable.build([[3, 1, 4] + own], vocab_size=model.config["vocab_size"])

    def gen(seed: int, dec: mtad_ext.Decoder | None = None) -> list[int]:
        if dec is None:
            dec = mtad_ext.Decoder(model, method="aded", capacity=256, seed=seed, **SAMPLED)
            dec.aded_params = AdedParams(max_nodes="auto", adapt=False)
        dec.set_trigram_table(table)
        return run(dec, [3, 1, 4], 40)

    first = gen(7)
    assert gen(7) == first
    reused = mtad_ext.Decoder(model, method="aded", capacity=256, seed=7, **SAMPLED)
    reused.aded_params = AdedParams(max_nodes="auto", adapt=False)
    gen(7, reused)
    run(reused, [9, 9, 9, 9], 30)  # another sequence between
    assert gen(7, reused) == first
