"""ADED's MCTS draft maker (algorithms.md 4) against a plain Python implementation of the
same search that draws the same counter-based uniforms, plus the trie's invariants."""

from __future__ import annotations

import math

import pytest
import torch
from rng_ref import uniform

from mtad_ext import AdedParams, InputError, TrigramTable


def reference_draft(
    table: TrigramTable, a: int, b: int, *, simulations: int = 150, depth: int = 3, c1: float = 32.0,
    c2: float = 8.0, paths: int = 24, extend: bool = True, max_nodes: int = 64, reward: str = "table",
    seed: int = 0, offset: int = 0,
) -> dict[str, list[int]]:  # fmt: skip
    """algorithms.md 4, written out plainly."""
    rows = table.lookup
    nodes = [dict(token=-1, parent=-1, depth=0, a=a, b=b, prior=0.0, first=-1, nch=0, expanded=False,
                  visits=0, reward=0.0)]  # fmt: skip
    counter = offset

    def value(x: int, y: int, tok: int, val: float) -> float:
        return val if reward == "table" else dict(rows(y, tok)).get(tok, 0.0)

    def expand(i: int) -> None:
        n = nodes[i]
        row = rows(n["a"], n["b"])
        n.update(expanded=True, first=len(nodes), nch=len(row))
        for tok, val in row:
            nodes.append(dict(token=tok, parent=i, depth=n["depth"] + 1, a=n["b"], b=tok, prior=val, first=-1,
                              nch=0, expanded=False, visits=0, reward=0.0))  # fmt: skip

    def select(i: int) -> int:
        n = nodes[i]
        children = range(n["first"], n["first"] + n["nch"])
        for c in children:
            if nodes[c]["visits"] == 0:  # unvisited children first
                return c
        big_n = float(n["visits"])
        explore = (c1 + math.log((big_n + c2 + 1.0) / c2)) * math.sqrt(big_n)
        best, best_score = n["first"], -math.inf
        for c in children:
            ch = nodes[c]
            score = ch["reward"] / ch["visits"] + explore * ch["prior"] / (1.0 + ch["visits"])
            if score > best_score:
                best, best_score = c, score
        return best

    for _ in range(simulations):
        path, i = [0], 0
        while nodes[i]["depth"] < depth:
            if not nodes[i]["expanded"]:
                expand(i)
            if nodes[i]["nch"] == 0:
                break
            c = select(i)
            path.append(c)
            i = c
            if nodes[c]["visits"] == 0:
                break
        r = 1.0
        for j in path[1:]:
            n, p = nodes[j], nodes[nodes[j]["parent"]]
            r += value(p["a"], p["b"], n["token"], n["prior"])
        x, y = nodes[i]["a"], nodes[i]["b"]
        for _d in range(nodes[i]["depth"], depth):
            row = rows(x, y)
            total = 0.0
            for _, v in row:
                total += v
            if not total > 0.0:
                break
            target = uniform(seed, counter) * total
            counter += 1
            cum, pick = 0.0, row[-1]
            for e in row:
                cum += e[1]
                if cum > target:
                    pick = e
                    break
            r += value(x, y, pick[0], pick[1])
            x, y = y, pick[0]
        for j in path:
            nodes[j]["visits"] += 1
            nodes[j]["reward"] += r

    order = sorted(range(1, len(nodes)), key=lambda j: (-nodes[j]["visits"], nodes[j]["depth"], j))[:paths]
    trie: dict[str, list[int]] = {"parent": [], "token": [], "depth": []}
    children: dict[int, dict[int, int]] = {-1: {}}
    for j in order:
        toks = []
        k = j
        while k > 0:
            toks.append(nodes[k]["token"])
            k = nodes[k]["parent"]
        toks.reverse()
        if extend and len(toks) >= 2:
            row = rows(nodes[j]["a"], nodes[j]["b"])
            if row:
                toks.append(row[0][0])
        at = -1
        for d, t in enumerate(toks):
            if t not in children[at]:
                if len(trie["token"]) >= max_nodes:
                    return trie
                new = len(trie["token"])
                trie["parent"].append(at)
                trie["token"].append(t)
                trie["depth"].append(d + 1)
                children[at][t] = new
                children[new] = {}
            at = children[at][t]
    return trie


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


def reference_lookup(context: list[int], max_tokens: int) -> list[int]:
    """The context-lookup path by its definition: of the earlier occurrences of the last 3
    tokens (else 2), the latest followed by max_tokens tokens, else the one followed by the
    most; up to max_tokens of what followed it."""
    n = len(context)
    for g in (3, 2):
        if n - 1 < g:
            continue
        found = [i for i in range(n - g) if context[i : i + g] == context[n - g :]]
        if found:
            i = max(found, key=lambda i: (min(max_tokens, n - i - g), i))
            return context[i + g : i + g + max_tokens]
    return []


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
