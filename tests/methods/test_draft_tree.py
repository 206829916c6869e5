"""The draft tree every method verifies (mtad_ext.DraftTree): its forward inputs give each
node the logits of its own path, and commit leaves the cache a fresh forward over the
accepted path would make."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from tiny_models import save_tiny

import mtad_ext
from mtad_ext import DraftTree, InputError

PREFIX = [5, 17, 42, 9, 3]


@pytest.fixture(scope="module", params=["llama_gqa_tied", "opt_pre_ln"])
def model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> mtad_ext.Model:
    return mtad_ext.load_model(str(save_tiny(request.param, "float32", tmp_path_factory.mktemp("tree"))))


def branching_tree() -> DraftTree:
    t = DraftTree()
    a = t.add(-1, 11)
    b = t.add(-1, 12)
    c = t.add(a, 21)
    t.add(b, 22)
    t.add(c, 31)
    t.add(a, 23)
    return t


def fed(model: mtad_ext.Model, tree: DraftTree) -> tuple[mtad_ext.KVCache, torch.Tensor]:
    """The prefix but its last token in the cache, then one pass over the root and the tree."""
    cache = model.new_cache(64)
    model.forward(cache, torch.tensor(PREFIX[:-1]))
    ids, positions, mask = tree.inputs(PREFIX[-1], len(PREFIX) - 1)
    return cache, model.forward(cache, ids, positions, mask)


def causal(model: mtad_ext.Model, tokens: list[int]) -> tuple[mtad_ext.KVCache, torch.Tensor]:
    cache = model.new_cache(64)
    return cache, model.forward(cache, torch.tensor(tokens))


def test_tree_inputs_mask_each_node_to_its_ancestors() -> None:
    t = branching_tree()
    assert [len(t.path_to(i)) for i in range(len(t))] == t.depth
    ids, positions, mask = t.inputs(7, 40)
    assert ids.tolist() == [7, *t.token]
    assert positions.tolist() == [40, *(40 + d for d in t.depth)]
    for i in range(len(t)):
        assert mask[i + 1].nonzero().flatten().tolist() == [0, *(x + 1 for x in t.path_to(i))]
    assert mask[0].nonzero().flatten().tolist() == [0]


def test_a_chain_feeds_in_causal_order() -> None:
    chain = DraftTree.chain([4, 8, 15])
    assert chain.is_chain() and not branching_tree().is_chain()
    assert chain.parent == [-1, 0, 1] and chain.depth == [1, 2, 3]
    ids, positions, mask = chain.inputs(2, 9)
    assert ids.tolist() == [2, 4, 8, 15] and positions is None and mask is None


@pytest.mark.parametrize("make", [branching_tree, lambda: DraftTree.chain([4, 8, 15, 16])])
def test_every_node_gets_the_logits_of_its_path(model: mtad_ext.Model, make: Callable[[], DraftTree]) -> None:
    tree = make()
    _, logits = fed(model, tree)
    _, root = causal(model, PREFIX)
    torch.testing.assert_close(logits[0], root[-1], atol=1e-4, rtol=1e-4)
    for i in range(len(tree)):
        _, want = causal(model, PREFIX + [tree.token[x] for x in tree.path_to(i)])
        torch.testing.assert_close(logits[i + 1], want[-1], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("make", [branching_tree, lambda: DraftTree.chain([4, 8, 15, 16])])
def test_commit_keeps_the_accepted_path_as_a_fresh_forward_would(
    model: mtad_ext.Model, make: Callable[[], DraftTree]
) -> None:
    tree = make()
    n = len(PREFIX)
    for leaf in range(-1, len(tree)):
        path = tree.path_to(leaf) if leaf >= 0 else []
        cache, _ = fed(model, tree)
        tree.commit(cache, n, path)
        assert cache.length == n + len(path)
        want, _ = causal(model, PREFIX + [tree.token[x] for x in path])
        torch.testing.assert_close(cache.k[:, : cache.length], want.k[:, : cache.length], atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(cache.v[:, : cache.length], want.v[:, : cache.length], atol=1e-5, rtol=1e-4)


def test_add_path_shares_the_longest_prefix() -> None:
    t = branching_tree()
    size = len(t)
    t.add_path([11, 21, 31])  # there already
    assert len(t) == size
    t.add_path([11, 21, 32, 40])
    assert len(t) == size + 2
    assert [t.token[x] for x in t.path_to(len(t) - 1)] == [11, 21, 32, 40]


def test_commit_refuses_what_is_not_a_root_path(model: mtad_ext.Model) -> None:
    tree = branching_tree()
    cache, _ = fed(model, tree)
    for path in ([2], [0, 3], [0, 7], [1, 0]):
        with pytest.raises(InputError, match="not a root path"):
            tree.commit(cache, len(PREFIX), path)
    with pytest.raises(InputError, match="does not hold"):
        tree.commit(cache, len(PREFIX) + 1, [0])
    with pytest.raises(InputError, match="not -1 or a node"):
        tree.add(len(tree), 5)
