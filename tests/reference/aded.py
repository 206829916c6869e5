"""Plain references of ADED's draft maker (algorithms.md 4): the tri-gram table's rows, the
MCTS search over it and the context lookup path."""

from __future__ import annotations

import math
from collections import Counter, defaultdict

from mtad_ext import TrigramTable
from reference.rng import uniform


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


def reference_rows(seqs: list[list[int]], k: int) -> dict[tuple[int, int], list[tuple[int, float]]]:
    """Counts normalised per context, best k kept (ties: lower id), no renormalisation."""
    counts: dict[tuple[int, int], Counter[int]] = defaultdict(Counter)
    for s in seqs:
        for a, b, c in zip(s, s[1:], s[2:], strict=False):
            counts[(a, b)][c] += 1
    rows = {}
    for ctx, cnt in counts.items():
        total = sum(cnt.values())
        row = sorted(((c, n / total) for c, n in cnt.items()), key=lambda e: (-e[1], e[0]))
        rows[ctx] = row[:k] if k else row
    return rows
