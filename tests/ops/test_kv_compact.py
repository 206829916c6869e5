"""kv_compact (algorithms.md 3.4): the accepted path's K/V rows of every layer move to
the slots right after the prefix, in place, in one call."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from tiny_models import save_tiny

import mtad_ext
from mtad_ext import ops

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


def make_cache(
    g: torch.Generator, shape: tuple[int, int, int, int], dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    k = torch.randn(shape, generator=g).to(dtype)
    v = torch.randn(shape, generator=g).to(dtype)
    return k, v


def random_slots(g: torch.Generator, prefix: int, capacity: int, count: int) -> list[int]:
    """count distinct slots in [prefix, capacity), increasing (so slots[i] >= prefix + i)."""
    pool = torch.randperm(capacity - prefix, generator=g)[:count] + prefix
    return sorted(pool.tolist())


def check_compacted(before: torch.Tensor, after: torch.Tensor, prefix: int, slots: list[int]) -> None:
    n = len(slots)
    # The destination rows hold the sources' former contents, in every layer.
    assert torch.equal(after[:, prefix : prefix + n], before[:, slots])
    # Nothing else is written: the prefix and every row past the destinations.
    assert torch.equal(after[:, :prefix], before[:, :prefix])
    assert torch.equal(after[:, prefix + n :], before[:, prefix + n :])


@pytest.mark.parametrize("dtype", DTYPES)
def test_kv_compact_moves_rows_of_every_layer(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(0)
    in_place_rows = 0
    for case in range(60):
        layers = 1 + case % 4
        capacity = int(torch.randint(4, 40, (1,), generator=g))
        prefix = int(torch.randint(0, capacity, (1,), generator=g))
        count = int(torch.randint(0, capacity - prefix + 1, (1,), generator=g))
        k, v = make_cache(g, (layers, capacity, 2, 8), dtype)
        k_ptr, v_ptr = k.data_ptr(), v.data_ptr()
        k0, v0 = k.clone(), v.clone()
        slots = random_slots(g, prefix, capacity, count)
        in_place_rows += sum(s == prefix + i for i, s in enumerate(slots))
        ops.kv_compact(k, v, prefix, torch.tensor(slots, dtype=torch.int64))
        assert k.data_ptr() == k_ptr and v.data_ptr() == v_ptr  # in place
        check_compacted(k0, k, prefix, slots)
        check_compacted(v0, v, prefix, slots)
    assert in_place_rows > 0


def test_kv_compact_chained_sources() -> None:
    # slots[i] == prefix + i + 1: every source is the next row's destination, so the rows
    # must be read before they are overwritten (a naive parallel copy gets this wrong).
    g = torch.Generator().manual_seed(1)
    k, v = make_cache(g, (3, 12, 2, 4), torch.float32)
    k0, v0 = k.clone(), v.clone()
    slots = [5, 6, 7, 8]
    ops.kv_compact(k, v, 4, torch.tensor(slots))
    check_compacted(k0, k, 4, slots)
    check_compacted(v0, v, 4, slots)


def test_kv_compact_tree_path_layout() -> None:
    # MTAD: prefix 10, a W = 3, gamma = 3 tree cached depth by depth after the prefix; the
    # accepted path is node 1 (depth 1), node 5 (depth 2), node 6 (depth 3) plus nothing
    # else, at slots prefix + node.
    g = torch.Generator().manual_seed(2)
    k, v = make_cache(g, (2, 32, 4, 16), torch.float16)
    k0, v0 = k.clone(), v.clone()
    slots = [10 + 1, 10 + 5, 10 + 6]
    ops.kv_compact(k, v, 10, torch.tensor(slots))
    check_compacted(k0, k, 10, slots)
    check_compacted(v0, v, 10, slots)


def test_kv_compact_rows_in_place_are_untouched() -> None:
    g = torch.Generator().manual_seed(3)
    k, v = make_cache(g, (2, 8, 1, 4), torch.float32)
    k0, v0 = k.clone(), v.clone()
    ops.kv_compact(k, v, 3, torch.tensor([3, 4, 5]))
    assert torch.equal(k, k0) and torch.equal(v, v0)
    ops.kv_compact(k, v, 3, torch.empty(0, dtype=torch.int64))
    assert torch.equal(k, k0) and torch.equal(v, v0)


def test_kv_compact_on_a_model_cache(tmp_path: Path) -> None:
    # The KVCache's own tensors are the op's inputs; the cache sees the moved rows.
    model = mtad_ext.load_model(str(save_tiny("llama_gqa_tied", "float32", tmp_path)))
    cache = model.new_cache(16)
    model.forward(cache, torch.arange(8, dtype=torch.int64))
    k0, v0 = cache.k.clone(), cache.v.clone()
    k, v = cache.k, cache.v
    ops.kv_compact(k, v, 2, torch.tensor([4, 7]))
    check_compacted(k0, cache.k, 2, [4, 7])
    check_compacted(v0, cache.v, 2, [4, 7])
    assert not torch.equal(cache.k, k0)


def test_kv_compact_torch_op() -> None:
    g = torch.Generator().manual_seed(4)
    k, v = make_cache(g, (2, 10, 2, 2), torch.bfloat16)
    k0, v0 = k.clone(), v.clone()
    torch.ops.mtad.kv_compact(k, v, 1, torch.tensor([2, 6, 9]))
    check_compacted(k0, k, 1, [2, 6, 9])
    check_compacted(v0, v, 1, [2, 6, 9])


BAD = [
    ("not_increasing", 2, [5, 4], "strictly increasing"),
    ("duplicate", 2, [5, 5], "strictly increasing"),
    ("before_destination", 4, [3], "slots\\[0\\] = 3 is below prefix"),
    ("collides_with_earlier_destination", 2, [2, 2], "slots\\[1\\] = 2 is below prefix \\+ 1"),
    ("past_capacity", 2, [3, 8], "slots\\[1\\] = 8 is outside the cache's 8 slots"),
    ("negative_prefix", -1, [1], "prefix -1"),
    ("prefix_past_capacity", 9, [], "prefix 9"),
]


@pytest.mark.parametrize(("name", "prefix", "slots", "message"), BAD, ids=[b[0] for b in BAD])
def test_kv_compact_rejects_bad_slots(name: str, prefix: int, slots: list[int], message: str) -> None:
    k, v = torch.zeros(2, 8, 1, 4), torch.ones(2, 8, 1, 4)
    with pytest.raises(RuntimeError, match=message):
        ops.kv_compact(k, v, prefix, torch.tensor(slots, dtype=torch.int64))
    # A rejected call writes nothing.
    assert torch.equal(k, torch.zeros(2, 8, 1, 4)) and torch.equal(v, torch.ones(2, 8, 1, 4))


def test_kv_compact_rejects_bad_tensors() -> None:
    k, v = torch.zeros(2, 8, 1, 4), torch.zeros(2, 8, 1, 4)
    with pytest.raises(RuntimeError, match="slots must be int64"):
        ops.kv_compact(k, v, 0, torch.tensor([1], dtype=torch.int32))
    with pytest.raises(RuntimeError, match="slots must be int64"):
        ops.kv_compact(k, v, 0, torch.tensor([[1]]))
    with pytest.raises(RuntimeError, match="v has shape"):
        ops.kv_compact(k, torch.zeros(2, 9, 1, 4), 0, torch.tensor([1]))
    with pytest.raises(RuntimeError, match="k must be \\[L, C, KVH, D\\]"):
        ops.kv_compact(k[0], v[0], 0, torch.tensor([1]))
    with pytest.raises(RuntimeError, match="contiguous"):
        ops.kv_compact(k.transpose(0, 1), v.transpose(0, 1), 0, torch.tensor([1]))
    with pytest.raises(RuntimeError, match="same tensor"):
        ops.kv_compact(k, k, 0, torch.tensor([1]))


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", DTYPES)
def test_kv_compact_cuda_matches_cpu(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(5)
    for case in range(40):
        capacity = int(torch.randint(4, 300, (1,), generator=g))
        prefix = int(torch.randint(0, capacity, (1,), generator=g))
        count = int(torch.randint(0, min(capacity - prefix, 20) + 1, (1,), generator=g))
        # Odd head dims exercise the narrow copy paths (rows not a multiple of 16 bytes).
        head_dim = (3, 8, 64, 128)[case % 4]
        k, v = make_cache(g, (1 + case % 5, capacity, 2, head_dim), dtype)
        slots = random_slots(g, prefix, capacity, count)
        kd, vd = k.cuda(), v.cuda()
        # Slots given on the CPU or on the GPU.
        slots_t = torch.tensor(slots, dtype=torch.int64)
        ops.kv_compact(kd, vd, prefix, slots_t.cuda() if case % 2 else slots_t)
        ops.kv_compact(k, v, prefix, slots_t)
        assert torch.equal(kd.cpu(), k) and torch.equal(vd.cpu(), v)
    with pytest.raises(RuntimeError, match="strictly increasing"):
        ops.kv_compact(kd, vd, 0, torch.tensor([3, 2], device="cuda"))
