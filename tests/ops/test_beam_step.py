"""ops.beam_step against a plain PyTorch version of algorithms.md 3.1 with the same rng
counters (so the very same choices), and the properties a beam step must have. Greedy
(temperature 0) is a beam search on the plain softmax: top-W of the joint scores."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pytest
import torch
from reference.rng import rng_uniform
from reference.sampling import normalize as reference_normalize
from reference.sampling import random_logits
from torch import Tensor

import mtad_ext

ops = mtad_ext.ops
NEG_INF = -math.inf
# What a greedy draft beam-searches on (algorithms.md 3.1): T = 1, no truncation.
PLAIN = (1.0, 0, 1.0)


def draft_norm(temperature: float, top_k: int, top_p: float) -> tuple[float, int, float]:
    """The normalisation beam_step applies: the draft's own, or the plain softmax if greedy."""
    return PLAIN if temperature == 0 else (temperature, top_k, top_p)


class Beams(NamedTuple):
    parent: Tensor
    token: Tensor
    token_logprob: Tensor
    score: Tensor


def reference_beam_step(
    logits: Tensor,
    scores: Tensor,
    width: int,
    temperature: float,
    top_k: int,
    top_p: float,
    with_replacement: bool,
    seed: int,
    offset: int,
) -> tuple[Beams, bool]:
    """One draft step of 3.1, candidate by candidate. Also returns whether a draw with
    replacement landed within rounding of a cumulative boundary (choices then float luck)."""
    lp, _ = reference_normalize(logits, *draft_norm(temperature, top_k, top_p))
    lp = lp.float()
    rows, vocab = lp.shape
    n = rows * vocab
    joint = (scores.unsqueeze(1) + lp).flatten()  # float32, as the op adds
    alive = [f for f in range(n) if joint[f].item() > NEG_INF]
    ambiguous = False
    if temperature == 0 or not with_replacement:
        key = joint.clone()
        if temperature != 0:  # Gumbel-top-W: noise for candidate f from counter offset + f
            u = rng_uniform(seed, [offset + f for f in range(n)]).astype(np.float64)
            key = joint + torch.from_numpy(-np.log(-np.log(u))).float()
        chosen = sorted(alive, key=lambda f: (-key[f].item(), f))[:width]
    elif not alive:
        chosen = []
    else:
        # Draw i: first candidate whose running softmax(joint) mass exceeds rng(offset + i).
        mx = joint.max()
        log_s = torch.tensor(math.log(torch.exp((joint - mx).double()).sum().item())).float()
        probs = torch.exp(((joint - mx) - log_s).double()).tolist()
        chosen = []
        for u in rng_uniform(seed, [offset + i for i in range(width)]).astype(np.float64):
            cum, pick = 0.0, -1
            for f, p in enumerate(probs):
                if p <= 0:
                    continue
                cum += p
                pick = f
                ambiguous |= abs(cum - u) < 1e-6
                if cum > u:
                    break
            chosen.append(pick)
    chosen.sort(key=lambda f: (-joint[f].item(), f))
    idx = torch.tensor(chosen, dtype=torch.int64)
    cj = joint[idx].double()
    score = (cj - torch.logsumexp(cj, 0)).float() if len(chosen) else cj.float()
    beams = Beams(idx // vocab, idx % vocab, lp.flatten()[idx], score)
    return beams, ambiguous


def step(logits: Tensor, scores: Tensor, width: int, temperature: float, top_k: int, top_p: float,
         with_replacement: bool, seed: int, offset: int) -> Beams:
    return Beams(*ops.beam_step(logits, scores, width, temperature, top_k, top_p,
                                with_replacement, seed, offset))


def check_beam_properties(b: Beams, logits: Tensor, scores: Tensor, temperature: float,
                          top_k: int, top_p: float) -> None:
    """What every result must satisfy, whatever was drawn."""
    m = b.parent.numel()
    assert b.parent.dtype == b.token.dtype == torch.int64
    assert b.token_logprob.dtype == b.score.dtype == torch.float32
    assert b.token.shape == b.token_logprob.shape == b.score.shape == (m,)
    lp = ops.normalize(logits, *draft_norm(temperature, top_k, top_p))
    # token_logprob is log s_parent(token), exactly the normalised value.
    assert torch.equal(b.token_logprob, lp[b.parent, b.token])
    assert torch.isfinite(b.token_logprob).all(), "chose a removed token"
    assert torch.isfinite(scores[b.parent]).all(), "chose a dead beam"
    if m == 0:
        return
    # Renormalised over the chosen: logsumexp 0, and score differences are joint differences.
    joint = scores[b.parent] + b.token_logprob
    torch.testing.assert_close(torch.logsumexp(b.score.double(), 0).item(), 0.0, atol=1e-6, rtol=0)
    torch.testing.assert_close(b.score - b.score[0], joint - joint[0], atol=1e-5, rtol=0)
    # Descending joint score; ties go to the lower parent, then the lower token.
    flat = b.parent * logits.shape[1] + b.token
    for i in range(m - 1):
        assert joint[i] > joint[i + 1] or (joint[i] == joint[i + 1] and flat[i] <= flat[i + 1])


def later_step_scores(rows: int, seed: int) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.log_softmax(torch.randn(rows, generator=g), 0)


# (rows, width, temperature, top_k, top_p, with_replacement)
CASES = [
    (1, 4, 1.0, 0, 1.0, False),  # step 1: one row, score 0
    (1, 4, 1.0, 10, 0.9, False),
    (1, 4, 1.0, 0, 1.0, True),
    (1, 4, 0.0, 0, 1.0, False),  # greedy, one row: the top W of its softmax
    (1, 4, 0.0, 10, 0.9, False),  # greedy ignores top-k / top-p: the plain softmax
    (4, 4, 1.0, 10, 0.9, False),  # later steps: W rows, the paper's defaults
    (4, 4, 1.0, 10, 0.9, True),
    (4, 4, 0.7, 0, 0.8, False),
    (4, 4, 0.0, 0, 1.0, False),  # greedy: top-W of the joint scores (a beam search)
    (4, 4, 0.0, 2, 0.5, False),
    (4, 4, 0.0, 0, 1.0, True),  # greedy ignores with_replacement
    (4, 2, 1.3, 5, 1.0, False),
    (3, 8, 1.0, 2, 1.0, False),  # only 6 candidates survive top-k: M = 6
    (3, 8, 1.0, 2, 1.0, True),  # with replacement M = W, duplicates allowed
    (4, 16, 1.0, 0, 0.5, True),
]


@pytest.mark.parametrize(("rows", "width", "temperature", "top_k", "top_p", "with_replacement"), CASES)
@pytest.mark.parametrize(("seed", "offset"), [(0, 0), (99, 12345), (2**64 - 1, 2**40)])
def test_beam_step_matches_reference(rows: int, width: int, temperature: float, top_k: int,
                                     top_p: float, with_replacement: bool, seed: int,
                                     offset: int) -> None:
    logits = random_logits(rows, 60, seed=rows * 31 + width)
    scores = torch.zeros(1) if rows == 1 else later_step_scores(rows, seed=rows)
    got = step(logits, scores, width, temperature, top_k, top_p, with_replacement, seed, offset)
    want, ambiguous = reference_beam_step(logits, scores, width, temperature, top_k, top_p,
                                          with_replacement, seed, offset)
    assert not ambiguous, "pick another seed: a draw is within rounding of a boundary"
    assert torch.equal(got.parent, want.parent) and torch.equal(got.token, want.token)
    torch.testing.assert_close(got.token_logprob, want.token_logprob, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got.score, want.score, atol=1e-5, rtol=1e-5)
    check_beam_properties(got, logits, scores, temperature, top_k, top_p)
    # M = W with replacement; otherwise the W best of the candidates with a finite joint.
    lp = ops.normalize(logits, *draft_norm(temperature, top_k, top_p))
    alive = int(torch.isfinite(scores.unsqueeze(1) + lp).sum())
    sampled_with_replacement = with_replacement and temperature != 0
    assert got.parent.numel() == (width if sampled_with_replacement else min(width, alive))

def test_greedy_ties_go_to_lower_parent_then_lower_token() -> None:
    # Every row's two best ids tie, and rows 0, 1 and 3 have equal scores: their joint
    # scores tie; ties go to the lower parent, then the lower token.
    logits = torch.full((4, 6), -1.0)
    logits[:, 2] = logits[:, 4] = 3.0
    scores = torch.tensor([-1.0, -1.0, -0.5, -1.0])
    b = step(logits, scores, 3, 0.0, 0, 1.0, False, 0, 0)
    assert b.parent.tolist() == [2, 2, 0] and b.token.tolist() == [2, 4, 2]
    torch.testing.assert_close(b.score.exp().sum(), torch.tensor(1.0))
    # The tie at the boundary of the top W: the lowest parent, then the lowest token wins.
    b = step(logits, scores, 5, 0.0, 0, 1.0, False, 0, 0)
    assert b.parent.tolist() == [2, 2, 0, 0, 1] and b.token.tolist() == [2, 4, 2, 4, 2]


def test_greedy_step_one_is_the_top_w_of_the_softmax() -> None:
    # A greedy draft's first step: W distinct tokens, the W most likely under the plain
    # softmax (top-k / top-p ignored), with their real log-probabilities, not one beam of 0.
    logits = random_logits(1, 30, seed=3)
    b = step(logits, torch.zeros(1), 4, 0.0, 3, 0.5, False, 7, 0)
    lsm = torch.log_softmax(logits[0], -1)
    top = torch.topk(lsm, 4)
    assert b.parent.tolist() == [0] * 4 and b.token.tolist() == top.indices.tolist()
    torch.testing.assert_close(b.token_logprob, top.values, atol=1e-6, rtol=0)
    torch.testing.assert_close(b.score, top.values - torch.logsumexp(top.values, 0), atol=1e-6, rtol=0)


def test_greedy_top_w_over_rows_is_a_beam_search_step() -> None:
    # Greedy, later step: all W x V candidates compete on b_j + log softmax_j(v); the W best
    # joints win, several from one row when that row is confident.
    logits = random_logits(5, 30, seed=3)
    scores = later_step_scores(5, seed=4)
    b = step(logits, scores, 3, 0.0, 0, 1.0, False, 7, 0)
    joint = (scores.unsqueeze(1) + torch.log_softmax(logits, -1)).flatten()
    top = torch.topk(joint, 3).indices
    assert b.parent.tolist() == (top // 30).tolist() and b.token.tolist() == (top % 30).tolist()
    torch.testing.assert_close(b.token_logprob, torch.log_softmax(logits, -1).flatten()[top], atol=1e-6, rtol=0)
    assert (b.token_logprob < 0).all()


def test_width_beyond_surviving_candidates() -> None:
    logits = random_logits(1, 40, seed=5)
    zero = torch.zeros(1)
    b = step(logits, zero, 4, 1.0, 1, 1.0, False, 3, 0)  # top_k = 1, one row: M = 1
    assert b.parent.tolist() == [0] and b.token.tolist() == [logits.argmax().item()]
    assert b.score.tolist() == [0.0] and b.token_logprob.tolist() == [0.0]
    # Greedy ignores top_k (a beam search on the plain softmax): M = W.
    for repl in (False, True):
        b = step(logits, zero, 4, 0.0, 1, 1.0, repl, 3, 0)
        assert b.token.tolist() == torch.topk(logits[0], 4).indices.tolist()
    # More beams than candidates: every candidate once.
    b = step(random_logits(1, 3, seed=5), zero, 4, 0.0, 0, 1.0, False, 3, 0)
    assert sorted(b.token.tolist()) == [0, 1, 2]
    # With replacement the one survivor is drawn W times; scores share the mass equally.
    b = step(logits, zero, 4, 1.0, 1, 1.0, True, 3, 0)
    assert b.token.tolist() == [logits.argmax().item()] * 4
    torch.testing.assert_close(b.score, torch.full((4,), -math.log(4)))


def test_dead_beams_are_never_chosen() -> None:
    logits = random_logits(3, 20, seed=6)
    scores = torch.tensor([NEG_INF, -0.1, NEG_INF])
    for t, repl in [(1.0, False), (1.0, True), (0.0, False)]:
        for seed in range(20):
            b = step(logits, scores, 4, t, 0, 1.0, repl, seed, 0)
            assert (b.parent == 1).all()
    dead = torch.full((3,), NEG_INF)
    for t, repl in [(1.0, False), (1.0, True), (0.0, False)]:
        b = step(logits, dead, 4, t, 0, 1.0, repl, 0, 0)
        assert b.parent.numel() == 0 and b.score.numel() == 0


def test_beam_step_is_deterministic_for_a_seed() -> None:
    logits = random_logits(4, 50, seed=8)
    scores = later_step_scores(4, seed=9)
    for repl in (False, True):
        a = step(logits, scores, 4, 1.0, 0, 1.0, repl, 5, 100)
        b = step(logits, scores, 4, 1.0, 0, 1.0, repl, 5, 100)
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
        c = step(logits, scores, 4, 1.0, 0, 1.0, repl, 6, 100)
        assert not torch.equal(a.token * 10 + a.parent, c.token * 10 + c.parent)


@pytest.mark.parametrize("with_replacement", [False, True])
def test_one_beam_is_a_draw_from_the_joint_softmax(with_replacement: bool) -> None:
    """W = 1: Gumbel-max (without replacement) and the inverse CDF (with) both draw one
    candidate with probability softmax(joint). 6000 steps, each with fresh counters of one
    seed; Pearson's chi-square over the 6 candidates, p-value > 1e-3 with scipy, else each
    frequency within 5 binomial standard deviations."""
    scores = torch.tensor([0.6, 0.4]).log()
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.5, 1.0]])
    joint = (scores.unsqueeze(1) + torch.log_softmax(logits, -1)).flatten()
    probs = torch.softmax(joint.double(), 0)
    n = 6000
    counts = torch.zeros(6, dtype=torch.float64)
    for i in range(n):
        b = step(logits, scores, 1, 1.0, 0, 1.0, with_replacement, 77, i * 6)
        counts[b.parent.item() * 3 + b.token.item()] += 1
    try:
        from scipy.stats import chisquare
    except ImportError:
        sd = torch.sqrt(probs * (1 - probs) / n)
        assert ((counts / n - probs).abs() <= 5 * sd).all()
    else:
        assert chisquare(counts.numpy(), (probs * n).numpy()).pvalue > 1e-3


def test_without_replacement_chooses_distinct_candidates() -> None:
    logits = random_logits(4, 8, seed=10)
    scores = later_step_scores(4, seed=11)
    for seed in range(30):
        b = step(logits, scores, 10, 1.0, 0, 1.0, False, seed, 0)
        flat = (b.parent * 8 + b.token).tolist()
        assert len(flat) == 10 and len(set(flat)) == 10


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"logits": torch.zeros(5)}, r"logits must be a non-empty \[W_in, V\]"),
        ({"logits": torch.zeros(0, 5)}, r"logits must be a non-empty \[W_in, V\]"),
        ({"logits": torch.zeros(2, 5, dtype=torch.float64)}, "logits must be float32"),
        ({"scores": torch.zeros(3)}, r"scores must be \[W_in\]"),
        ({"scores": torch.zeros(2, dtype=torch.float64)}, "scores must be float32"),
        ({"scores": torch.tensor([0.0, math.nan])}, "scores must be finite or -inf"),
        ({"scores": torch.tensor([0.0, math.inf])}, "scores must be finite or -inf"),
        ({"width": 0}, "width must be >= 1"),
        ({"temperature": -1.0}, "temperature"),
        ({"top_k": -2}, "top_k"),
        ({"top_p": 2.0}, "top_p"),
    ],
)
def test_beam_step_rejects_bad_input(kwargs: dict, match: str) -> None:
    args = {"logits": torch.zeros(2, 5), "scores": torch.zeros(2), "width": 2,
            "temperature": 1.0, "top_k": 0, "top_p": 1.0, "with_replacement": False,
            "seed": 0, "offset": 0, **kwargs}
    with pytest.raises(RuntimeError, match=match):
        ops.beam_step(**args)


def test_torch_library_beam_step() -> None:
    logits = random_logits(3, 25, seed=12)
    scores = later_step_scores(3, seed=13)
    for repl in (False, True):
        a = torch.ops.mtad.beam_step(logits, scores, 4, 1.0, 5, 0.9, repl, -1, 7)
        b = ops.beam_step(logits, scores, 4, 1.0, 5, 0.9, repl, 2**64 - 1, 7)
        assert isinstance(a, tuple) and len(a) == 4
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.cuda
@pytest.mark.parametrize(("rows", "width", "temperature", "top_k", "top_p", "with_replacement"),
                         CASES + [(4, 4, 1.0, 0, 1.0, False), (4, 4, 1.0, 0, 1.0, True)])
@pytest.mark.parametrize("vocab", [60, 32000])
def test_cuda_beam_step_matches_cpu(rows: int, width: int, temperature: float, top_k: int,
                                    top_p: float, with_replacement: bool, vocab: int) -> None:
    logits = random_logits(rows, vocab, seed=rows + width)
    scores = torch.zeros(1) if rows == 1 else later_step_scores(rows, seed=rows)
    for seed, offset in [(0, 0), (31, 4096)]:
        cpu = step(logits, scores, width, temperature, top_k, top_p, with_replacement, seed, offset)
        gpu = Beams(*(t.cpu() for t in step(logits.cuda(), scores.cuda(), width, temperature,
                                             top_k, top_p, with_replacement, seed, offset)))
        assert torch.equal(gpu.parent, cpu.parent) and torch.equal(gpu.token, cpu.token)
        torch.testing.assert_close(gpu.token_logprob, cpu.token_logprob, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(gpu.score, cpu.score, atol=1e-5, rtol=1e-5)
    dead = torch.tensor([NEG_INF] * rows)
    assert step(logits.cuda(), dead.cuda(), width, temperature, top_k, top_p,
                with_replacement, 0, 0).parent.numel() == 0
    with pytest.raises(RuntimeError, match="scores must be finite or -inf"):
        step(logits.cuda(), torch.full((rows,), math.nan).cuda(), width, temperature, top_k,
             top_p, with_replacement, 0, 0)


# -- beam_step_padded: the same beams without the host read, padded with dead ones --------

def check_padded(logits: Tensor, scores: Tensor, width: int, temperature: float, top_k: int, top_p: float,
                 repl: bool, seed: int, device: str = "cpu") -> None:
    """Its live beams are beam_step's, then dead ones up to beam_step's most beams."""
    want = step(logits, scores, width, temperature, top_k, top_p, repl, seed, 3)
    got = [t.cpu() for t in ops.beam_step_padded(logits.to(device), scores.to(device), width, temperature, top_k,
                                                 top_p, repl, seed, 3)]
    parent, token, token_lp, score, bad = got
    rows, vocab = logits.shape
    size = min(width, rows * vocab) if temperature == 0 or not repl else width
    m = want.parent.numel()
    assert parent.numel() == token.numel() == token_lp.numel() == score.numel() == size
    assert bad.tolist() == [0]
    assert torch.equal(parent[:m], want.parent) and torch.equal(token[:m], want.token)
    torch.testing.assert_close(token_lp[:m], want.token_logprob, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(score[:m], want.score, atol=1e-5, rtol=1e-5)
    assert parent[m:].eq(0).all() and token[m:].eq(0).all()
    assert token_lp[m:].eq(NEG_INF).all() and score[m:].eq(NEG_INF).all()


PADDED_CASES = [
    # (rows, vocab, width, temperature, top_k, top_p, with_replacement, dead rows)
    (1, 40, 4, 1.0, 2, 1.0, False, []),  # top_k 2 < W: two dead beams
    (1, 40, 4, 1.0, 0, 0.3, False, []),  # top_p leaves few
    (3, 20, 4, 1.0, 0, 1.0, False, [0, 2]),
    (3, 20, 4, 0.0, 0, 1.0, False, [1]),
    (1, 3, 5, 0.0, 0, 1.0, False, []),  # more beams than candidates: min(W, N) rows, none dead
    (3, 20, 4, 1.0, 0, 1.0, True, [0, 2]),
    (3, 20, 4, 1.0, 0, 1.0, False, [0, 1, 2]),  # every beam dead
    (3, 20, 4, 1.0, 0, 1.0, True, [0, 1, 2]),
    (2, 50, 3, 0.9, 5, 0.9, False, []),
]


@pytest.mark.parametrize(("rows", "vocab", "width", "temperature", "top_k", "top_p", "repl", "dead"), PADDED_CASES)
def test_padded_beams_are_beam_steps_then_dead_ones(rows: int, vocab: int, width: int, temperature: float,
                                                    top_k: int, top_p: float, repl: bool, dead: list[int]) -> None:
    logits = random_logits(rows, vocab, seed=rows * vocab + width)
    scores = torch.zeros(1) if rows == 1 else later_step_scores(rows, seed=rows)
    scores[dead] = NEG_INF
    for seed in range(4):
        check_padded(logits, scores, width, temperature, top_k, top_p, repl, seed)


def test_padded_beams_read_nothing_and_count_bad_scores() -> None:
    logits = random_logits(2, 30, seed=21)
    before = mtad_ext._host_reads()
    for bad_score in (math.nan, math.inf):
        *beams, bad = ops.beam_step_padded(logits, torch.tensor([0.0, bad_score]), 3, 1.0, 0, 1.0, False, 0, 0)
        assert bad.tolist() == [1]
        assert all(b.numel() == 3 for b in beams) and beams[3].eq(NEG_INF).all()  # no beams: all dead
    assert mtad_ext._host_reads() == before
    # beam_step reads once and raises on the same scores.
    with pytest.raises(RuntimeError, match="scores must be finite or -inf"):
        step(logits, torch.tensor([math.nan, 0.0]), 3, 1.0, 0, 1.0, False, 0, 0)
    assert mtad_ext._host_reads() == before + 1


def test_torch_library_beam_step_padded() -> None:
    logits = random_logits(3, 25, seed=12)
    scores = later_step_scores(3, seed=13)
    a = torch.ops.mtad.beam_step_padded(logits, scores, 4, 1.0, 2, 0.9, False, -1, 7)
    b = ops.beam_step_padded(logits, scores, 4, 1.0, 2, 0.9, False, 2**64 - 1, 7)
    assert isinstance(a, tuple) and len(a) == 5
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


@pytest.mark.cuda
@pytest.mark.parametrize(("rows", "vocab", "width", "temperature", "top_k", "top_p", "repl", "dead"), PADDED_CASES)
def test_cuda_padded_beams_match_cpu(rows: int, vocab: int, width: int, temperature: float, top_k: int,
                                     top_p: float, repl: bool, dead: list[int]) -> None:
    logits = random_logits(rows, vocab, seed=rows * vocab + width)
    scores = torch.zeros(1) if rows == 1 else later_step_scores(rows, seed=rows)
    scores[dead] = NEG_INF
    before = mtad_ext._host_reads()
    for seed in range(4):
        check_padded(logits, scores, width, temperature, top_k, top_p, repl, seed, device="cuda")
    assert mtad_ext._host_reads() == before + 4  # check_padded's beam_step only
