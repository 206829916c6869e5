"""normalize, sample (sampling.cu) and the pieces of beam_step (beam_step.cu) under the CUDA
emulation against the CPU kernels. Both sides promise the same candidate order, the same
counters and the same formulas, so kept sets, sampled ids and beams must agree exactly;
log-probabilities to float rounding."""

from __future__ import annotations

import math

import pytest
import torch

from .cases import check_normalize
from .emu import INT_SENTINEL, Emu

INF = float("inf")
INT64_MIN = -(2**63)


def logits_like(R: int, V: int, gen: torch.Generator, spread: float = 3.0) -> torch.Tensor:
    return torch.randn(R, V, generator=gen) * spread




# (temperature, top_k, top_p): plain, greedy, top-k, top-p, both, and the "keep all" spellings
SETTINGS = [(1.0, 0, 1.0), (0.0, 0, 1.0), (0.7, 50, 1.0), (1.0, 0, 0.9), (0.8, 40, 0.95), (1.3, 0, 0.0),
            (1.0, 5, 0.5)]
SMALL_VOCABS = [1, 2, 7, 100, 1000, 4097, 5003]


@pytest.mark.parametrize("V", SMALL_VOCABS)
@pytest.mark.parametrize("setting", SETTINGS, ids=lambda s: f"T{s[0]}-k{s[1]}-p{s[2]}")
def test_normalize(emu: Emu, ops, V: int, setting: tuple[float, int, float]) -> None:
    gen = torch.Generator().manual_seed(V)
    check_normalize(emu, ops, logits_like(3, V, gen), *setting)


@pytest.mark.emu_heavy
@pytest.mark.parametrize("V", [49152, 128256, 50257])
@pytest.mark.parametrize("setting", [(1.0, 0, 1.0), (0.8, 40, 0.95), (1.0, 0, 0.9), (0.0, 0, 1.0)],
                         ids=lambda s: f"T{s[0]}-k{s[1]}-p{s[2]}")
def test_normalize_big_vocab(emu: Emu, ops, V: int, setting: tuple[float, int, float]) -> None:
    gen = torch.Generator().manual_seed(V)
    check_normalize(emu, ops, logits_like(2, V, gen, spread=2.0), *setting)


def edge_rows(V: int) -> torch.Tensor:
    """Rows of -inf, NaN, +inf, ties, a single finite token, and flat rows (every token tied:
    no small bucket holds the kept set, so the radix-select path runs)."""
    g = torch.Generator().manual_seed(V + 7)
    rows = logits_like(9, V, g)
    rows[0] = -INF
    rows[1, V // 2] = float("nan")
    rows[2, V // 3] = INF
    rows[3] = torch.randint(0, 3, (V,), generator=g).float()  # heavy ties
    rows[4] = -INF
    rows[4, V - 1] = 1.5
    rows[5] = 0.25  # flat
    rows[6, : V // 2] = -INF
    rows[7] = -1e30
    rows[8, 0] = rows[8].max()  # a tie for the maximum at the lowest id
    return rows


@pytest.mark.parametrize("V", [9, 1000, 6000])
@pytest.mark.parametrize("setting", SETTINGS + [(1.0, 10_000_000, 1.0), (1.0, 3, 0.0), (2.0, 0, 1e-6)],
                         ids=lambda s: f"T{s[0]}-k{s[1]}-p{s[2]}")
def test_normalize_edge_rows(emu: Emu, ops, V: int, setting: tuple[float, int, float]) -> None:
    check_normalize(emu, ops, edge_rows(V), *setting)


@pytest.mark.parametrize("V", [1, 3, 1000, 4097, 49152])
@pytest.mark.parametrize("setting", [(1.0, 0, 1.0), (0.8, 40, 0.95), (1.0, 0, 0.5)],
                         ids=lambda s: f"T{s[0]}-k{s[1]}-p{s[2]}")
def test_sample(emu: Emu, ops, V: int, setting: tuple[float, int, float]) -> None:
    gen = torch.Generator().manual_seed(V + 1)
    R = 4 if V > 10_000 else 24
    lp = ops.normalize(logits_like(R, V, gen), *setting)
    for seed, offset in [(0, 0), (17, 123456789), (2**63 + 5, 3)]:
        got = emu.sample(lp, seed, offset)
        assert torch.equal(got, ops.sample(lp, seed, offset)), (seed, offset)


def test_sample_edge_rows(emu: Emu, ops) -> None:
    """No mass at all (-1), NaN log-probs (skipped as no mass), a single token, ties."""
    V = 777
    lp = torch.log_softmax(torch.randn(6, V), dim=1)
    lp[0] = -INF
    lp[1, 5] = float("nan")
    lp[2] = -INF
    lp[2, V - 1] = 0.0
    lp[3] = -math.log(V)  # uniform
    lp[4, :700] = -INF
    for seed in range(5):
        got = emu.sample(lp, seed, 9)
        assert torch.equal(got, ops.sample(lp, seed, 9))
        assert got[0] == -1 and got[2] == V - 1


# -- beam_step: normalize, then beam_keys + top-k or beam_joint + sample_repeat, then ------
# -- beam_finish, strung together as ops/beam_step.cpp does on the GPU ---------------------

def emu_beam_step(emu: Emu, logits: torch.Tensor, scores: torch.Tensor, width: int, T: float, top_k: int,
                  top_p: float, with_replacement: bool, seed: int, offset: int) -> tuple[torch.Tensor, ...]:
    rows, V = logits.shape
    N = rows * V
    select = T == 0 or not with_replacement
    # A greedy draft beam-searches on the plain softmax (algorithms.md 3.1).
    lp = emu.normalize(logits, 1.0, 0, 1.0) if T == 0 else emu.normalize(logits, T, top_k, top_p)
    if select:
        keys = emu.beam_keys(lp, scores, T != 0, seed, offset)
        assert not (keys == INT_SENTINEL).any()
        chosen = torch.topk(keys, min(width, N)).values
        M = int((chosen != INT64_MIN).sum())
        picks = chosen[:M].contiguous()
    else:
        joint = emu.beam_joint(lp, scores)
        torch.testing.assert_close(joint, (scores[:, None] + lp).reshape(-1), rtol=0, atol=0)
        M = width if bool((joint > -INF).any()) else 0
        picks = emu.sample_repeat(torch.log_softmax(joint, 0), M, seed, offset) if M else joint[:0].long()
    if M == 0:
        return tuple(torch.empty(0) for _ in range(4))
    return emu.beam_finish(picks, select, lp, scores)


def check_beam(emu: Emu, ops, logits: torch.Tensor, scores: torch.Tensor, width: int, T: float, top_k: int,
               top_p: float, repl: bool, seed: int) -> None:
    got = emu_beam_step(emu, logits, scores, width, T, top_k, top_p, repl, seed, 5)
    want = ops.beam_step(logits, scores, width, T, top_k, top_p, repl, seed, 5)
    assert got[0].numel() == want[0].numel()
    if want[0].numel() == 0:
        return
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1]), "different beams"
    torch.testing.assert_close(got[2], want[2], rtol=1e-5, atol=2e-5)
    torch.testing.assert_close(got[3], want[3], rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("width", range(1, 9))
@pytest.mark.parametrize("T", [0.0, 0.9])
@pytest.mark.parametrize("repl", [False, True])
def test_beam_step(emu: Emu, ops, width: int, T: float, repl: bool) -> None:
    gen = torch.Generator().manual_seed(width)
    rows = 1 + width % 3
    logits = logits_like(rows, 1003, gen)
    scores = -torch.rand(rows, generator=gen) * 3
    check_beam(emu, ops, logits, scores, width, T, 0, 1.0, repl, seed=width * 11)


@pytest.mark.parametrize("width", [1, 4, 8])
@pytest.mark.parametrize("repl", [False, True])
@pytest.mark.parametrize("case", ["top_k", "top_p", "dead_beam", "tiny_vocab", "all_dead"])
def test_beam_step_edges(emu: Emu, ops, width: int, repl: bool, case: str) -> None:
    gen = torch.Generator().manual_seed(width + 100)
    V = 3 if case == "tiny_vocab" else 517
    logits = logits_like(3, V, gen)
    scores = -torch.rand(3, generator=gen)
    top_k, top_p = (2, 1.0) if case == "top_k" else ((0, 0.6) if case == "top_p" else (0, 1.0))
    if case == "dead_beam":
        scores[1] = -INF
    if case == "all_dead":
        scores[:] = -INF
    check_beam(emu, ops, logits, scores, width, 1.0, top_k, top_p, repl, seed=width)


@pytest.mark.emu_heavy
@pytest.mark.parametrize("width", [2, 8])
def test_beam_step_big_vocab(emu: Emu, ops, width: int) -> None:
    gen = torch.Generator().manual_seed(width)
    check_beam(emu, ops, logits_like(2, 49152, gen), torch.tensor([-0.5, -1.0]), width, 0.8, 0, 1.0, False, 3)


# -- beam_step_padded: the same pieces sized without a host read (ops/beam_step.cpp) --------

def emu_beam_step_padded(emu: Emu, logits: torch.Tensor, scores: torch.Tensor, width: int, T: float, top_k: int,
                         top_p: float, with_replacement: bool, seed: int, offset: int) -> tuple[torch.Tensor, ...]:
    rows, V = logits.shape
    N = rows * V
    select = T == 0 or not with_replacement
    cap = min(width, N) if select else width
    lp = emu.normalize(logits, 1.0, 0, 1.0) if T == 0 else emu.normalize(logits, T, top_k, top_p)
    if select:
        # Every top key, dead ones (INT64_MIN) too: beam_finish turns them into dead beams.
        picks = torch.topk(emu.beam_keys(lp, scores, T != 0, seed, offset), cap).values.contiguous()
    else:
        joint = emu.beam_joint(lp, scores)
        picks = emu.sample_repeat(torch.log_softmax(joint, 0), cap, seed, offset)
    out = list(emu.beam_finish(picks, select, lp, scores))
    if not select and not bool((joint > -INF).any()):
        out = [out[0].zero_(), out[1].zero_(), out[2].fill_(-INF), out[3].fill_(-INF)]
    return tuple(out)


@pytest.mark.parametrize("width", [1, 3, 8])
@pytest.mark.parametrize("repl", [False, True])
@pytest.mark.parametrize("case", ["top_k", "top_p", "dead_beam", "tiny_vocab", "all_dead", "greedy_dead"])
def test_beam_step_padded(emu: Emu, ops, width: int, repl: bool, case: str) -> None:
    gen = torch.Generator().manual_seed(width + 200)
    V = 3 if case == "tiny_vocab" else 517
    logits = logits_like(3, V, gen)
    scores = -torch.rand(3, generator=gen)
    top_k, top_p = (2, 1.0) if case == "top_k" else ((0, 0.05) if case == "top_p" else (0, 1.0))
    T = 0.0 if case == "greedy_dead" else 1.0
    if case in ("dead_beam", "greedy_dead"):
        scores[1] = -INF
    if case == "all_dead":
        scores[:] = -INF
    got = emu_beam_step_padded(emu, logits, scores, width, T, top_k, top_p, repl, width, 5)
    want = ops.beam_step_padded(logits, scores, width, T, top_k, top_p, repl, width, 5)
    assert want[4].tolist() == [0]
    assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1]), "different beams"
    torch.testing.assert_close(got[2], want[2], rtol=1e-5, atol=2e-5)
    torch.testing.assert_close(got[3], want[3], rtol=1e-5, atol=2e-5)
