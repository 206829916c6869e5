"""The CPU forward (one parallel region per forward, model/cpu_forward.cpp) split across
threads even for tiny models: equal to transformers, and bit for bit the same on one
thread and on two (every output element is computed by the same code either way)."""

from __future__ import annotations

import pytest
import torch
from tiny_models import CONFIGS, VOCAB, load_reference, save_tiny

import mtad_ext

ATOL = 1e-4


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny_threads")


@pytest.fixture
def split_everything():
    prev = mtad_ext.ops.set_min_parallel_work(0)
    threads = torch.get_num_threads()
    yield
    mtad_ext.ops.set_min_parallel_work(prev)
    torch.set_num_threads(threads)


def run(folder, ids: list[int], tree_tokens: list[int], mask: torch.Tensor, positions: torch.Tensor):
    """Prefill of 33 tokens (two 32-row blocks), decode steps, then a tree step and logit_rows."""
    model = mtad_ext.load_model(str(folder))
    cache = model.new_cache(80)
    prefill = model.forward(cache, torch.tensor(ids[:33]))
    steps = [model.forward(cache, torch.tensor([i]))[0] for i in ids[33:]]
    tree = model.forward(cache, torch.tensor(tree_tokens), positions=positions, tree_mask=mask)
    cache.truncate(len(ids))
    rows = model.forward(cache, torch.tensor(tree_tokens), positions=positions, tree_mask=mask,
                         logit_rows=torch.tensor([2, 0, 2]))
    return torch.cat([prefill, torch.stack(steps)]), tree, rows


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_threads_agree_and_match_reference(name, dtype, tiny_root, split_everything):
    folder = save_tiny(name, dtype, tiny_root)
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, VOCAB, (37,), generator=g).tolist()
    tree_tokens = torch.randint(0, VOCAB, (3,), generator=g).tolist()
    # Node 1 hangs under node 0; node 2 is a sibling of node 0.
    mask = torch.tensor([[1, 0, 0], [1, 1, 0], [0, 0, 1]], dtype=torch.bool)
    positions = torch.tensor([37, 38, 37])
    results = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        results[threads] = run(folder, ids, tree_tokens, mask, positions)
    for one, two in zip(results[1], results[2], strict=True):
        assert torch.equal(one, two)

    ref = load_reference(folder)
    with torch.no_grad():
        expected = ref(torch.tensor([ids])).logits[0].float()
        paths = [[0], [0, 1], [2]]
        tree_expected = torch.stack([ref(torch.tensor([ids + [tree_tokens[j] for j in p]])).logits[0, -1].float()
                                     for p in paths])
    seq, tree, rows = results[2]
    torch.testing.assert_close(seq, expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(tree, tree_expected, atol=ATOL, rtol=0)
    torch.testing.assert_close(rows, tree[[2, 0, 2]], atol=0, rtol=0)


def test_concurrent_forwards_on_one_model(tiny_root, split_everything):
    """forward releases the GIL: forwards of one model from several Python threads, each
    with its own cache, each lease their own scratch buffers."""
    from concurrent.futures import ThreadPoolExecutor

    folder = save_tiny("llama_gqa_tied", "float32", tiny_root)
    model = mtad_ext.load_model(str(folder))
    g = torch.Generator().manual_seed(4)
    prompts = [torch.randint(0, VOCAB, (n,), generator=g) for n in (40, 7, 33, 21)]

    def decode(ids: torch.Tensor) -> torch.Tensor:
        cache = model.new_cache(64)
        out = [model.forward(cache, ids)[-1]]
        for _ in range(8):
            out.append(model.forward(cache, out[-1].argmax().view(1))[0])
        return torch.stack(out)

    alone = [decode(p) for p in prompts]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(decode, prompts * 3))
    for i, got in enumerate(together):
        assert torch.equal(got, alone[i % len(prompts)])
