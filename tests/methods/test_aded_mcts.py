"""ADED's MCTS draft maker (algorithms.md 4) against a plain Python implementation of the
same search that draws the same counter-based uniforms, plus the trie's invariants."""

from __future__ import annotations

import pytest
import torch
from reference.aded import reference_draft, reference_lookup

from mtad_ext import AdedParams, InputError, TrigramTable


def structured_table(seed: int, vocab: int = 40, adapt: bool = True) -> tuple[TrigramTable, list[list[int]]]:
    """A table from a random sparse Markov chain (text-like: a few likely successors each),
    adapted on one sequence so that some values exceed 1."""
    g = torch.Generator().manual_seed(seed)
    succ = torch.randint(0, vocab, (vocab, vocab, 5), generator=g)
    seqs = []
    for _ in range(8):
        s = torch.randint(0, vocab, (2,), generator=g).tolist()
        for _ in range(300):
            s.append(int(succ[s[-2], s[-1], int(torch.randint(0, 5, (1,), generator=g))]))
        seqs.append(s)
    table = TrigramTable.build(seqs, vocab_size=vocab)
    if adapt:
        for i in range(0, 120, 3):
            table.adapt(seqs[0][: i + 16])
    return table, seqs


PARAMS = [
    {},
    {"simulations": 40, "paths": 8},
    {"depth": 4, "max_nodes": 20},
    {"c1": 1.5, "c2": 3.0, "extend": False},
    {"reward": "public"},
    {"paths": 1},
    {"max_nodes": 5, "seed": 9, "offset": 1 << 32},
]


@pytest.mark.parametrize("kw", PARAMS, ids=[str(p) for p in PARAMS])
def test_draft_matches_reference(kw: dict) -> None:
    table, seqs = structured_table(1)
    seed, offset = kw.pop("seed", 3), kw.pop("offset", 0)
    params = AdedParams(**kw)
    nonempty = 0
    for a, b in list(zip(seqs[1], seqs[1][1:], strict=False))[:25]:
        got = table.draft(a, b, params, seed, offset)
        want = reference_draft(table, a, b, seed=seed, offset=offset, **kw)
        assert {k: got[k] for k in ("parent", "token", "depth")} == want, (a, b)
        nonempty += bool(want["token"])
    assert nonempty >= 20


def test_draft_is_deterministic_for_a_seed() -> None:
    table, seqs = structured_table(2)
    a, b = seqs[0][10], seqs[0][11]
    first = table.draft(a, b, AdedParams(), 5, 0)
    assert all(table.draft(a, b, AdedParams(), 5, 0) == first for _ in range(3))
    assert first["root_visits"] == 150 and first["rollout_tokens"] > 0


def test_trie_invariants() -> None:
    table, seqs = structured_table(3)
    for max_nodes in (64, 16, 3):
        params = AdedParams(max_nodes=max_nodes)
        for a, b in list(zip(seqs[2], seqs[2][1:], strict=False))[:30]:
            t = table.draft(a, b, params, 0, 0)
            n = len(t["token"])
            assert n <= max_nodes
            hist: list[tuple[int, int]] = []
            for i in range(n):
                p = t["parent"][i]
                assert -1 <= p < i
                assert t["depth"][i] == (1 if p < 0 else t["depth"][p] + 1)
                assert t["depth"][i] <= 4  # depth 3 plus one argmax extension
                x, y = (a, b) if p < 0 else hist[p]
                # Every node is a successor the table knows for its context.
                assert t["token"][i] in dict(table.lookup(x, y))
                hist.append((y, t["token"][i]))
            siblings = {}
            for i in range(n):
                key = (t["parent"][i], t["token"][i])
                assert key not in siblings  # de-duplicated
                siblings[key] = i


def test_paths_by_visits_and_argmax_extension() -> None:
    table = TrigramTable.build([[1, 2, 3, 4, 5, 6]], vocab_size=10)
    # The search tree is the chain 3 4 5; its paths by visits: [3], [3 4], [3 4 5].
    assert table.draft(1, 2, AdedParams(paths=1))["token"] == [3]
    # [3 4] is extended by the argmax after (3, 4), 5; [3 4 5] by the one after (4, 5), 6.
    assert table.draft(1, 2, AdedParams(paths=2))["token"] == [3, 4, 5]
    t = table.draft(1, 2, AdedParams(paths=3))
    assert t["token"] == [3, 4, 5, 6] and t["parent"] == [-1, 0, 1, 2] and t["depth"] == [1, 2, 3, 4]
    assert table.draft(1, 2, AdedParams(paths=3, extend=False))["token"] == [3, 4, 5]


def test_context_lookup_path_is_the_latest_longest_match() -> None:
    empty = TrigramTable(50)  # no MCTS nodes: the trie is the lookup path alone
    g = torch.Generator().manual_seed(4)
    cases = [
        ([1, 2, 3, 9, 9, 1, 2, 3], [9, 9, 1, 2]),  # 3-gram match, the path runs to the end
        ([5, 1, 2, 7, 1, 2, 8, 0, 1, 2], [8, 0, 1, 2]),  # 2-gram: the latest of two matches
        ([1, 2, 3, 4, 1, 2, 3, 1, 2, 3], [4, 1, 2, 3]),  # the latest match has only 3 after it
        ([9, 9, 9, 9, 9], [9, 9]),  # a run: the most tokens follow the first match
        ([4, 5, 6, 4, 5], [6, 4, 5]),  # only a 2-gram matches
        ([1, 2, 3, 4], []),  # no match
        ([7], []),
        ([], []),
    ]
    cases += [(torch.randint(0, 6, (60,), generator=g).tolist(), None) for _ in range(40)]
    for context, want in cases:
        want = reference_lookup(context, 4) if want is None else want
        assert reference_lookup(context, 4) == want
        t = empty.draft(1, 2, AdedParams(lookup=4), context=context)
        assert t["token"] == want and t["parent"] == list(range(-1, len(want) - 1)), context
        assert t["depth"] == list(range(1, len(want) + 1))
    assert empty.draft(1, 2, AdedParams(lookup=0), context=[1, 2, 3, 1, 2])["token"] == []


def test_context_lookup_path_merges_into_the_trie() -> None:
    table = TrigramTable.build([[1, 2, 3, 4, 5, 6]], vocab_size=10)
    # MCTS gives the chain 3 4 5 6; the lookup path 3 4 8 shares its first two nodes.
    t = table.draft(1, 2, AdedParams(paths=3, lookup=3), context=[0, 1, 2, 3, 4, 8, 0, 1, 2])
    assert t["token"] == [3, 4, 5, 6, 8] and t["parent"] == [-1, 0, 1, 2, 1]
    assert t["depth"] == [1, 2, 3, 4, 3]
    # Its nodes come on top of max_nodes.
    t = table.draft(1, 2, AdedParams(paths=3, max_nodes=2, lookup=3), context=[7, 1, 2, 9, 9, 7, 1, 2])
    assert t["token"] == [3, 4, 9, 9, 7] and t["parent"] == [-1, 0, -1, 2, 3]


def test_empty_or_unknown_context_gives_an_empty_trie() -> None:
    table = TrigramTable.build([[1, 2, 3]], vocab_size=10)
    assert table.draft(7, 8)["token"] == []
    assert table.draft(1, 2, AdedParams(simulations=0))["token"] == []
    with pytest.raises(InputError, match="outside the vocabulary"):
        table.draft(1, 10)


def test_bad_parameters_raise() -> None:
    for kw, msg in [({"simulations": -1}, "simulations"), ({"depth": 0}, "depth"), ({"c2": 0.0}, "c2"),
                    ({"max_nodes": -1}, "max_nodes"), ({"reward": "x"}, "reward"), ({"cap": 0.0}, "cap"),
                    ({"window": -2}, "window"), ({"lookup": -1}, "lookup"), ({"lookup": 65}, "lookup")]:  # fmt: skip
        with pytest.raises(InputError, match=msg):
            AdedParams(**kw)
