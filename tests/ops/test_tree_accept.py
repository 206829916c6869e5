"""tree_accept and tree_sample (ADED's trie acceptance, algorithms.md 4) against plain
Python implementations drawing the same counter-based uniforms, and the sampler's
losslessness measured on a tiny vocabulary (like SpS's test in tests/ops/test_verify.py)."""

from __future__ import annotations

import math

import pytest
import torch
from dist_stats import chi_square
from reference.tree import ref_tree_accept, ref_tree_sample

from mtad_ext import ops

CHI2_CRIT_4DOF = 23.51  # chi-square, 4 degrees of freedom, p = 1e-4 (seeded: the outcome is fixed)


def random_trie(g: torch.Generator, n: int, vocab: int) -> tuple[list[int], list[int]]:
    """Parents before children; sibling tokens distinct (as the draft maker makes them)."""
    parents, tokens = [], []
    for i in range(n):
        p = int(torch.randint(-1, i, (1,), generator=g)) if i else -1
        used = {tokens[j] for j in range(i) if parents[j] == p}
        free = [v for v in range(vocab) if v not in used]
        if not free:
            p, free = -1, list(range(vocab))
        parents.append(p)
        tokens.append(free[int(torch.randint(0, len(free), (1,), generator=g))])
    return parents, tokens


def call_accept(target: torch.Tensor, parents: list[int], tokens: list[int]) -> tuple[int, list[int], int]:
    r = ops.tree_accept(target, torch.tensor(parents, dtype=torch.int64), torch.tensor(tokens, dtype=torch.int64))
    assert r["accept_node"] == (r["path"][-1].item() if r["accept_len"] else -1)
    return r["accept_len"], r["path"].tolist(), r["next_token"]


def call_sample(logp: torch.Tensor, parents: list[int], tokens: list[int], seed: int, offset: int
                ) -> tuple[int, list[int], int]:  # fmt: skip
    r = ops.tree_sample(logp, torch.tensor(parents, dtype=torch.int64), torch.tensor(tokens, dtype=torch.int64),
                        seed, offset)  # fmt: skip
    return r["accept_len"], r["path"].tolist(), r["next_token"]


# ---- tree_accept ------------------------------------------------------------------------


@pytest.mark.parametrize("vocab", [3, 20])
def test_tree_accept_matches_reference(vocab: int) -> None:
    g = torch.Generator().manual_seed(vocab)
    lengths = set()
    for case in range(300):
        n = case % 17
        parents, tokens = random_trie(g, n, vocab)
        logits = torch.randn(n + 1, vocab, generator=g)
        # Make agreement likely: most nodes carry the argmax of their parent's row.
        best = logits.argmax(-1).tolist()
        for i in range(n):
            if torch.rand(1, generator=g) < 0.7 and best[parents[i] + 1] not in [
                tokens[j] for j in range(n) if parents[j] == parents[i] and j != i
            ]:
                tokens[i] = best[parents[i] + 1]
        want = ref_tree_accept(best, parents, tokens)
        assert call_accept(logits, parents, tokens) == want, case
        assert call_accept(torch.tensor(best), parents, tokens) == want, case  # argmax ids given
        lengths.add(want[0])
    assert {0, 1, 2, 3} <= lengths


def test_tree_accept_ties_and_dtypes() -> None:
    # Ties in a row go to the lowest id, as normalize's greedy does.
    logits = torch.tensor([[1.0, 3.0, 3.0], [0.0, 0.0, 0.0], [5.0, 1.0, 1.0]])
    assert call_accept(logits, [-1, -1], [2, 1]) == (1, [1], 0)
    assert call_accept(logits.half(), [-1, -1], [2, 1]) == (1, [1], 0)
    # No draft: the next token is row 0's argmax.
    assert call_accept(logits[:1], [], []) == (0, [], 1)


def test_tree_accept_rejects_bad_tries() -> None:
    logits = torch.zeros(4, 10)
    with pytest.raises(RuntimeError, match=r"parents\[1\] = 1 must be -1"):
        call_accept(logits, [-1, 1, 0], [1, 2, 3])
    with pytest.raises(RuntimeError, match=r"tokens\[2\] = 10 is outside the vocabulary \[0, 10\)"):
        call_accept(logits, [-1, 0, 0], [1, 2, 10])
    with pytest.raises(RuntimeError, match=r"parents must be \[3\]"):
        call_accept(logits, [-1, 0], [1, 2, 3])
    with pytest.raises(RuntimeError, match="int64"):
        ops.tree_accept(logits, torch.tensor([-1.0, 0.0, 0.0]), torch.tensor([1, 2, 3]))


def test_torch_library_entries() -> None:
    logits = torch.tensor([[0.0, 2.0], [3.0, 0.0]])
    a, node, path, nxt = torch.ops.mtad.tree_accept(logits, torch.tensor([-1]), torch.tensor([1]))
    assert (a, node, path.tolist(), nxt) == (1, 0, [0], 0)
    lp = torch.log_softmax(logits, -1)
    a, node, path, nxt = torch.ops.mtad.tree_sample(lp, torch.tensor([-1]), torch.tensor([1]), 3, 0)
    assert a in (0, 1) and 0 <= nxt < 2


# ---- tree_sample ------------------------------------------------------------------------


@pytest.mark.parametrize("vocab,top_k", [(6, 0), (40, 5), (40, 0)])
def test_tree_sample_matches_reference(vocab: int, top_k: int) -> None:
    g = torch.Generator().manual_seed(vocab + top_k)
    lengths, skipped = set(), 0
    for case in range(250):
        n = case % 13
        parents, tokens = random_trie(g, n, vocab)
        logits = torch.randn(n + 1, vocab, generator=g) * 2
        for i in range(n):  # draft tokens the target likes, so that paths get accepted
            if torch.rand(1, generator=g) < 0.5:
                logits[parents[i] + 1, tokens[i]] += 3.0
        logp = ops.normalize(logits, 1.0, top_k, 1.0)
        a, path, token, ambiguous = ref_tree_sample(logp, parents, tokens, 11 + case, 7 * case)
        if ambiguous:
            skipped += 1
            continue
        assert call_sample(logp, parents, tokens, 11 + case, 7 * case) == (a, path, token), case
        assert math.isfinite(logp[(path[-1] + 1) if path else 0, token].item())  # never a removed token
        lengths.add(a)
    assert skipped <= 5
    assert {0, 1, 2} <= lengths


def test_tree_sample_greedy_target_equals_tree_accept() -> None:
    g = torch.Generator().manual_seed(5)
    for case in range(200):
        n = case % 11
        parents, tokens = random_trie(g, n, 8)
        logits = torch.randn(n + 1, 8, generator=g)
        best = logits.argmax(-1).tolist()
        for i in range(n):
            if torch.rand(1, generator=g) < 0.6 and best[parents[i] + 1] not in [
                tokens[j] for j in range(n) if parents[j] == parents[i] and j != i
            ]:
                tokens[i] = best[parents[i] + 1]
        one_hot = ops.normalize(logits, 0.0, 0, 1.0)
        assert call_sample(one_hot, parents, tokens, case, 0) == call_accept(logits, parents, tokens)


def test_tree_sample_rejects_bad_input() -> None:
    lp = torch.log_softmax(torch.zeros(3, 4), -1)
    with pytest.raises(RuntimeError, match=r"parents\[0\] = 0"):
        call_sample(lp, [0, 0], [1, 2], 0, 0)
    with pytest.raises(RuntimeError, match="float32"):
        call_sample(lp.double(), [-1, 0], [1, 2], 0, 0)
    with pytest.raises(RuntimeError, match="no probability mass"):
        call_sample(torch.full((3, 4), -math.inf), [-1, 0], [1, 2], 0, 0)


def test_tree_sample_is_lossless() -> None:
    """The first emitted token is distributed as the target's row 0; given that it is node
    0's token (so node 0 was accepted), the second is distributed as row 1. The draft
    candidates are fixed (not drawn from any q), as ADED's table makes them."""
    g = torch.Generator().manual_seed(21)
    vocab, trials = 5, 20000
    # Root children tokens 3, 0, 1; node 0 (token 3) has children 2, 4; node 1 has child 3.
    parents = [-1, -1, -1, 0, 0, 1]
    tokens = [3, 0, 1, 2, 4, 3]
    logits = torch.randn(len(parents) + 1, vocab, generator=g)
    logits[0, 3] += 1.0  # node 0 accepted often enough to test its row
    logp = torch.log_softmax(logits, -1)
    p0, p1 = logp[0].exp().tolist(), logp[1].exp().tolist()
    first, second = [0] * vocab, [0] * vocab
    accepted = 0
    for t in range(trials):
        a, path, token = call_sample(logp, parents, tokens, 4, t * (len(parents) + 1))
        emitted = [tokens[i] for i in path] + [token]
        accepted += a
        first[emitted[0]] += 1
        if emitted[0] == tokens[0]:
            second[emitted[1]] += 1
    assert chi_square(first, p0) < CHI2_CRIT_4DOF, (first, p0)
    assert sum(second) > 3000
    assert chi_square(second, p1) < CHI2_CRIT_4DOF, (second, p1)
    assert accepted / trials > 0.5  # the candidates are used, not just the final draw


@pytest.mark.cuda
def test_cuda_matches_cpu() -> None:
    g = torch.Generator().manual_seed(8)
    for case in range(100):
        n = case % 15
        parents, tokens = random_trie(g, n, 50)
        logits = torch.randn(n + 1, 50, generator=g) * 2
        logp = ops.normalize(logits, 1.0, 0, 1.0)
        dev = [torch.tensor(x, dtype=torch.int64, device="cuda") for x in (parents, tokens)]
        r_cpu = call_accept(logits, parents, tokens)
        r = ops.tree_accept(logits.cuda(), *dev)
        assert (r["accept_len"], r["path"].tolist(), r["next_token"]) == r_cpu
        s_cpu = call_sample(logp, parents, tokens, case, 0)
        r = ops.tree_sample(logp.cuda(), *dev, case, 0)
        assert (r["accept_len"], r["path"].tolist(), r["next_token"]) == s_cpu
