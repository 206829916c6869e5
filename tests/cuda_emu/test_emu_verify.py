"""verify, sps_accept (verify.cu), tree_accept, tree_sample (tree_accept.cu) and kv_compact
(kv_compact.cu) under the CUDA emulation against the CPU kernels, on random trees."""

from __future__ import annotations

import math

import pytest
import torch

from .cases import KV_CASES, kv_compact_case, sps_inputs
from .emu import FLOAT_SENTINEL, TREE_HEADER, VERIFY_HEADER, Emu

INF = float("inf")


def random_tree(N: int, max_depth: int, gen: torch.Generator) -> torch.Tensor:
    """parents [N]: each node's parent an earlier node (or -1), depth at most max_depth."""
    parents, depth = [], []
    for n in range(N):
        while True:
            p = int(torch.randint(-1, n, (1,), generator=gen)) if n else -1
            d = 1 if p < 0 else depth[p] + 1
            if d <= max_depth:
                break
        parents.append(p)
        depth.append(d)
    return torch.tensor(parents, dtype=torch.int64)


def tree_inputs(N: int, V: int, G: int, gen: torch.Generator, agree: float) -> tuple[torch.Tensor, ...]:
    """Target logits [N + 1, V], parents, tokens: a fraction `agree` of the tokens is the
    target's argmax after the parent (so that paths get accepted)."""
    logits = torch.randn(N + 1, V, generator=gen) * 3
    parents = random_tree(N, G, gen)
    tokens = torch.randint(0, V, (N,), generator=gen)
    best = logits.argmax(1)
    for n in range(N):
        if float(torch.rand(1, generator=gen)) < agree:
            tokens[n] = best[int(parents[n]) + 1]
    return logits, parents, tokens


@pytest.mark.parametrize("N,G", [(1, 1), (5, 5), (12, 4), (30, 6), (60, 8)])
@pytest.mark.parametrize("V", [50, 1031])
@pytest.mark.parametrize("setting", [(0.0, 0, 1.0, 1.0), (1.0, 0, 1.0, 0.3), (0.8, 20, 0.9, 0.05)],
                         ids=lambda s: f"T{s[0]}-k{s[1]}-p{s[2]}-tau{s[3]}")
def test_verify(emu: Emu, ops, N: int, G: int, V: int, setting: tuple[float, int, float, float]) -> None:
    T, k, p, tau = setting
    gen = torch.Generator().manual_seed(N * 100 + V)
    logits, parents, tokens = tree_inputs(N, V, G, gen, agree=0.7)
    best_lq = -torch.rand(G, generator=gen)
    for seed in (1, 99):
        want = ops.verify(logits, parents, tokens, best_lq, tau, T, k, p, seed, 7)
        logp = emu.normalize(logits, T, k, p)
        node_lp, info = emu.verify_tree(logp, parents, tokens, best_lq, math.log(tau))
        assert info[0] == 0, f"status {info.tolist()[:VERIFY_HEADER]}"
        a, node, row = int(info[3]), int(info[4]), int(info[5])
        assert (a, node) == (want["accept_len"], want["accept_node"])
        assert torch.equal(info[VERIFY_HEADER:VERIFY_HEADER + a], want["path"])
        torch.testing.assert_close(node_lp, want["node_logprob"], rtol=1e-5, atol=1e-5)
        bonus = emu.sample(logp[row:row + 1].contiguous(), seed, 7)
        assert int(bonus) == want["bonus_token"]


@pytest.mark.parametrize("bad,status", [("parent", 1), ("token", 2), ("depth", 3)])
def test_verify_reports_bad_trees(emu: Emu, ops, bad: str, status: int) -> None:
    """Malformed trees come back as a status naming the node (no host check before the
    kernel), and the CPU op refuses the same tree."""
    gen = torch.Generator().manual_seed(5)
    logits, parents, tokens = tree_inputs(6, 40, 3, gen, agree=0.5)
    best_lq = -torch.rand(3, generator=gen)
    if bad == "parent":
        parents[4] = 4
    elif bad == "token":
        tokens[4] = 40
    else:
        parents = torch.tensor([-1, 0, 1, 2, 0, 1])  # node 3 at depth 4 > G = 3
    logp = ops.normalize(logits, 1.0, 0, 1.0)
    _, info = emu.verify_tree(logp, parents, tokens, best_lq, math.log(0.5))
    assert int(info[0]) == status and int(info[1]) == (3 if bad == "depth" else 4)
    with pytest.raises(RuntimeError):
        ops.verify(logits, parents, tokens, best_lq, 0.5, 1.0, 0, 1.0, 1, 0)




@pytest.mark.parametrize("G", [0, 1, 4, 8])
@pytest.mark.parametrize("V", [2, 300, 4099])
@pytest.mark.parametrize("case", ["random", "close", "masked", "same"])
def test_sps_accept(emu: Emu, ops, G: int, V: int, case: str) -> None:
    gen = torch.Generator().manual_seed(G * 10 + V)
    tlp, dlp, tokens = sps_inputs(G, V, gen, case)
    for seed in range(3):
        want = ops.sps_accept(tlp, dlp, tokens, seed, 11)
        got = emu.sps_accept(tlp, dlp, tokens, seed, 11)
        assert (int(got[0]), int(got[1])) == tuple(want) and int(got[2]) == -1


def test_sps_accept_bad_token(emu: Emu) -> None:
    tlp = torch.log_softmax(torch.randn(4, 10), 1)
    dlp = torch.log_softmax(torch.randn(3, 10), 1)
    got = emu.sps_accept(tlp, dlp, torch.tensor([1, 10, 2]), 0, 0)
    assert got.tolist() == [0, 0, 1]  # out[2]: the index of the bad token


@pytest.mark.parametrize("N", [0, 1, 7, 25, 64])
@pytest.mark.parametrize("V", [30, 2000])
@pytest.mark.parametrize("agree", [0.3, 0.9])
def test_tree_accept(emu: Emu, N: int, V: int, agree: float) -> None:
    gen = torch.Generator().manual_seed(N + V)
    logits, parents, tokens = tree_inputs(N, V, 6, gen, agree)
    want = torch.ops.mtad.tree_accept(logits, parents, tokens)
    info = emu.tree_accept(logits.argmax(1), parents, tokens, V)
    a = int(info[3])
    assert info[0] == 0 and a == want[0] and int(info[4]) == want[1] and int(info[6]) == want[3]
    assert torch.equal(info[TREE_HEADER:TREE_HEADER + a], want[2])


@pytest.mark.parametrize("N", [0, 1, 6, 20, 48])
@pytest.mark.parametrize("V", [16, 1500])
@pytest.mark.parametrize("case", ["random", "repeated_siblings", "peaked"])
def test_tree_sample(emu: Emu, N: int, V: int, case: str) -> None:
    gen = torch.Generator().manual_seed(N * 7 + V)
    logits, parents, tokens = tree_inputs(N, V, 5, gen, agree=0.6)
    if case == "repeated_siblings" and N > 2:  # the same token twice under one parent
        tokens[2] = tokens[1]
        parents[2] = parents[1]
    if case == "peaked":
        logits = logits * 5
    logp = torch.log_softmax(logits, 1)
    for seed in range(4):
        want = torch.ops.mtad.tree_sample(logp, parents, tokens, seed, 3)
        info = emu.tree_sample(logp, parents, tokens, seed, 3)
        a = int(info[3])
        assert info[0] == 0 and (a, int(info[4]), int(info[6])) == (want[0], want[1], want[3])
        assert torch.equal(info[TREE_HEADER:TREE_HEADER + a], want[2])


def test_tree_sample_residual_without_mass(emu: Emu) -> None:
    """Every token of the last node rejected except ones without mass: the draw falls back
    to p (the second block_draw of the kernel)."""
    V = 4
    logp = torch.full((3, V), -INF)
    logp[:, 0] = 0.0  # all mass on token 0
    parents, tokens = torch.tensor([-1, -1]), torch.tensor([1, 2])  # both rejected (p = 0)
    want = torch.ops.mtad.tree_sample(logp, parents, tokens, 0, 0)
    info = emu.tree_sample(logp, parents, tokens, 0, 0)
    assert (int(info[3]), int(info[6])) == (want[0], want[3]) == (0, 0)


# -- kv_compact: every word width the launcher picks (16, 8, 4, 2, 1 bytes) -----------------





@pytest.mark.parametrize("width", list(KV_CASES))
@pytest.mark.parametrize("case", ["chain", "tree_path", "in_place", "overlap"])
def test_kv_compact(emu: Emu, ops, width: str, case: str) -> None:
    kv_compact_case(emu, ops, width, case)


def test_outputs_are_written(emu: Emu) -> None:
    """The sentinel the wrappers fill outputs with is overwritten wherever the kernel owes a
    value (node_lp of every node)."""
    logp = torch.log_softmax(torch.randn(4, 9), 1)
    node_lp, _ = emu.verify_tree(logp, torch.tensor([-1, 0, 1]), torch.tensor([1, 2, 3]), -torch.rand(3), -1.0)
    assert not (node_lp == FLOAT_SENTINEL).any()
