"""MTAD with a greedy draft (draft temperature 0) and a sampling target (algorithms.md 3.1):
the draft runs a beam search of width W on its joint log-probabilities (plain softmax), so
the proposed block is the best of W beams and its draft log-probs are real log-probabilities,
not the one-hot rows of normalize(T = 0) (one beam, every draft log-prob 0). Held to the plain
beam search of tests/reference/beam.py on fresh forwards of the draft."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import torch
from reference.beam import greedy_beam_search

import mtad_ext

UNTRUNCATED = dict(temperature=1.0, top_k=0, top_p=1.0)
GAMMA, WIDTH = 4, 3
PROMPT = [5, 17, 42, 9]


def draft_logprobs(model: mtad_ext.Model, committed: Sequence[int]):
    """next_logprobs for the reference: the model's log softmax after committed + tokens,
    from a fresh cache each time."""

    def next_logprobs(tokens: Sequence[int]) -> torch.Tensor:
        seq = list(committed) + list(tokens)
        cache = model.new_cache(len(seq))
        return torch.log_softmax(model.forward(cache, torch.tensor(seq))[-1].double(), -1)

    return next_logprobs


def target_joint(model: mtad_ext.Model, committed: Sequence[int], tokens: Sequence[int]) -> float:
    """The target's joint log-probability (T = 1, untruncated) of tokens after committed."""
    seq = list(committed) + list(tokens)
    cache = model.new_cache(len(seq))
    lp = torch.log_softmax(model.forward(cache, torch.tensor(seq)).double(), -1)
    n = len(committed)
    return sum(lp[n - 1 + i, t].item() for i, t in enumerate(tokens))


@pytest.mark.parametrize("method", ["mtad", "mtad-tree"])
def test_greedy_draft_equal_to_target_accepts_every_block(tiny, method):
    """Draft = target, draft T = 0, target T = 1 untruncated: the draft's per-token log-probs
    are the target's, so every joint ratio is 1 > tau and each step accepts all gamma tokens.
    (One-hot draft rows gave log q = 0 against log p of about -5 here: nothing accepted.)"""
    model = tiny["llama_gqa_tied"]
    dec = mtad_ext.Decoder(model, model, method=method, gamma=GAMMA, width=WIDTH, tau=0.5, seed=3, capacity=128,
                           draft_temperature=0.0, **UNTRUNCATED)  # fmt: skip
    dec.start(PROMPT)
    for _ in range(5):
        dec.step()
        s = dec.last_stats
        assert s["accepted"] == GAMMA and s["emitted"] == GAMMA + 1, s


@pytest.mark.parametrize("method", ["mtad", "mtad-tree"])
@pytest.mark.parametrize(("target_arch", "draft_arch"), [("llama_gqa_tied", "llama_gqa_tied"),
                                                         ("llama_gqa_tied", "opt_pre_ln")])
def test_greedy_draft_proposes_the_best_beam_of_a_beam_search(tiny, method, target_arch, draft_arch):
    """Each step's accepted block comes from the W beams of the reference beam search from the
    committed tokens (draft = target: always accepted; a different draft: accepted because
    tau is tiny): mtad proposes the best beam (3.2); mtad-tree accepts, among the passing
    depth-gamma nodes, the one the target likes best (3.3). Steps whose choice lies within
    rounding are skipped; most must count."""
    target, draft = tiny[target_arch], tiny[draft_arch]
    tau = 0.5 if target is draft else 1e-30
    dec = mtad_ext.Decoder(target, draft, method=method, gamma=GAMMA, width=WIDTH, tau=tau, seed=11, capacity=128,
                           draft_temperature=0.0, **UNTRUNCATED)  # fmt: skip
    dec.start(PROMPT)
    checked = 0
    for _ in range(8):
        committed = list(dec.tokens)
        emitted = dec.step()
        assert dec.last_stats["accepted"] == GAMMA, dec.last_stats
        beams, margin = greedy_beam_search(draft_logprobs(draft, committed), WIDTH, GAMMA)
        assert len(beams) == WIDTH
        want = beams[0].tokens
        if method == "mtad-tree":
            lp = [target_joint(target, committed, b.tokens) for b in beams]
            ranked = sorted(lp, reverse=True)
            margin = min(margin, ranked[0] - ranked[1])
            want = beams[lp.index(ranked[0])].tokens
        if margin < 1e-4:
            continue
        checked += 1
        assert emitted[:GAMMA] == want
    assert checked >= 6, f"only {checked} of 8 steps clear of rounding"
