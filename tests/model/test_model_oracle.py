"""mtad's forward equals transformers' on the same weights: prefill, cached decoding
and a tree-masked step, for every tiny config and stored dtype."""

from __future__ import annotations

import pytest
import torch
from tiny_models import CONFIGS, DTYPES, VOCAB, load_reference, save_tiny

import mtad_ext

ATOL = 1e-4


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny")


def ref_logits(ref, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return ref(torch.tensor([ids])).logits[0].float()


@pytest.mark.parametrize("dtype", list(DTYPES))
@pytest.mark.parametrize("name", list(CONFIGS))
def test_prefill_and_decode_match(name, dtype, tiny_root):
    folder = save_tiny(name, dtype, tiny_root)
    ref = load_reference(folder)
    model = mtad_ext.load_model(str(folder))
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, VOCAB, (20,), generator=g).tolist()
    expected = ref_logits(ref, ids)

    # Prefill of the first 12 tokens, all rows.
    cache = model.new_cache(64)
    got = model.forward(cache, torch.tensor(ids[:12]))
    assert cache.length == 12
    torch.testing.assert_close(got, expected[:12], atol=ATOL, rtol=0)

    # Then one token at a time against the cache.
    for i in range(12, 20):
        step = model.forward(cache, torch.tensor([ids[i]]))
        torch.testing.assert_close(step[0], expected[i], atol=ATOL, rtol=0)
    assert cache.length == 20


def random_tree(n: int, g: torch.Generator) -> list[int]:
    """parents[i] in [-1, i): -1 hangs the node right under the committed prefix."""
    return [int(torch.randint(-1, i, (1,), generator=g)) for i in range(n)]


@pytest.mark.parametrize("name", list(CONFIGS))
def test_tree_step_matches_each_path(name, tiny_root):
    folder = save_tiny(name, "float32", tiny_root)
    ref = load_reference(folder)
    model = mtad_ext.load_model(str(folder))
    g = torch.Generator().manual_seed(2)
    prefix = torch.randint(0, VOCAB, (9,), generator=g).tolist()
    n = 10
    parents = random_tree(n, g)
    tokens = torch.randint(0, VOCAB, (n,), generator=g).tolist()
    paths: list[list[int]] = []
    for i in range(n):
        path = [i] if parents[i] < 0 else paths[parents[i]] + [i]
        paths.append(path)
    mask = torch.zeros(n, n, dtype=torch.bool)
    for i, path in enumerate(paths):
        mask[i, path] = True
    positions = torch.tensor([len(prefix) + len(p) - 1 for p in paths])

    cache = model.new_cache(64)
    model.forward(cache, torch.tensor(prefix), logit_rows=torch.tensor([len(prefix) - 1]))
    got = model.forward(cache, torch.tensor(tokens), positions=positions, tree_mask=mask)
    for i, path in enumerate(paths):
        expected = ref_logits(ref, prefix + [tokens[j] for j in path])[-1]
        torch.testing.assert_close(got[i], expected, atol=ATOL, rtol=0, msg=f"tree node {i}")

    # Dropping the tree leaves the cache as if it had never run.
    cache.truncate(len(prefix))
    nxt = tokens[0]
    step = model.forward(cache, torch.tensor([nxt]))
    torch.testing.assert_close(step[0], ref_logits(ref, prefix + [nxt])[-1], atol=ATOL, rtol=0)


def test_logit_rows_select_rows(tiny_root):
    folder = save_tiny("llama_gqa_tied", "float32", tiny_root)
    model = mtad_ext.load_model(str(folder))
    ids = torch.arange(10)
    full = model.forward(model.new_cache(16), ids)
    rows = torch.tensor([9, 3])
    picked = model.forward(model.new_cache(16), ids, logit_rows=rows)
    torch.testing.assert_close(picked, full[rows], atol=1e-6, rtol=0)


def test_sharded_folder_matches_single_file(tiny_root):
    from tiny_models import build_hf_model

    sharded = tiny_root / "sharded"
    build_hf_model("llama_mha_untied").save_pretrained(sharded, max_shard_size="40KB")
    assert (sharded / "model.safetensors.index.json").exists()
    single = save_tiny("llama_mha_untied", "float32", tiny_root)
    ids = torch.arange(15)
    a = mtad_ext.load_model(str(sharded))
    b = mtad_ext.load_model(str(single))
    torch.testing.assert_close(a.forward(a.new_cache(32), ids), b.forward(b.new_cache(32), ids), atol=0, rtol=0)


@pytest.mark.parametrize("name", ["llama_gqa_tied", "opt_post_ln_proj"])
def test_tree_grown_depth_by_depth(name, tiny_root):
    """Beams run as tree rows one depth per call: the mask also covers earlier depths' nodes."""
    folder = save_tiny(name, "float32", tiny_root)
    ref = load_reference(folder)
    model = mtad_ext.load_model(str(folder))
    g = torch.Generator().manual_seed(3)
    prefix = torch.randint(0, VOCAB, (7,), generator=g).tolist()
    width, depth = 3, 3
    cache = model.new_cache(64)
    model.forward(cache, torch.tensor(prefix))
    paths: list[list[int]] = []  # token paths of the previous depth's beams
    parents_slot: list[list[int]] = []  # region columns of each beam's ancestors
    for d in range(depth):
        tokens = torch.randint(0, VOCAB, (width,), generator=g).tolist()
        region = width * (d + 1)
        mask = torch.zeros(width, region, dtype=torch.bool)
        new_paths, new_slots = [], []
        for j in range(width):
            parent = int(torch.randint(0, width, (1,), generator=g)) if d else -1
            anc = parents_slot[parent] if d else []
            cols = anc + [width * d + j]
            mask[j, cols] = True
            new_slots.append(cols)
            new_paths.append((paths[parent] if d else []) + [tokens[j]])
        positions = torch.full((width,), len(prefix) + d)
        got = model.forward(cache, torch.tensor(tokens), positions=positions, tree_mask=mask)
        for j in range(width):
            expected = ref_logits(ref, prefix + new_paths[j])[-1]
            torch.testing.assert_close(got[j], expected, atol=ATOL, rtol=0, msg=f"depth {d} beam {j}")
        paths, parents_slot = new_paths, new_slots


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
@pytest.mark.parametrize("name", ["llama_gqa_tied", "llama_mha_untied", "opt_post_ln_proj"])
def test_half_weights_on_cpu_match(name, dtype, tiny_root):
    """Matrices kept in half precision and widened in the kernels: the same function as
    float32 weights holding the same (half-representable) values."""
    folder = save_tiny(name, dtype, tiny_root)
    ref = load_reference(folder)
    model = mtad_ext.load_model(str(folder), dtype=dtype)
    assert model.weight_dtype == {"float16": "Half", "bfloat16": "BFloat16"}[dtype]
    assert model.dtype == "Float"
    ids = torch.randint(0, VOCAB, (40,), generator=torch.Generator().manual_seed(4)).tolist()
    expected = ref_logits(ref, ids)
    cache = model.new_cache(64)
    got = model.forward(cache, torch.tensor(ids[:36]))  # > 32 rows: the blocked prefill path
    torch.testing.assert_close(got, expected[:36], atol=ATOL, rtol=0)
    for i in range(36, 40):
        torch.testing.assert_close(model.forward(cache, torch.tensor([ids[i]]))[0], expected[i], atol=ATOL, rtol=0)
