"""ops/tree_attention.h: attention over a cached prefix plus a block under a causal or tree
mask (GQA), against the float64 reference, on each backend."""

from __future__ import annotations

import pytest
import torch
from reference.attention import reference_attention

import mtad_ext

ops = mtad_ext.ops


@pytest.mark.parametrize("region", [0, 5])  # extra cached tree nodes ruled by the mask
def test_tree_attention(region: int, device: str) -> None:
    g = torch.Generator().manual_seed(3 + region)
    T, H, KVH, D, C, prefix = 6, 6, 2, 32, 40, 11
    q = torch.randn(T, H, D, generator=g)
    k, v = torch.randn(C, KVH, D, generator=g), torch.randn(C, KVH, D, generator=g)
    mask = torch.rand(T, region + T, generator=g) < 0.5
    mask[:, region:] |= torch.eye(T, dtype=torch.bool)
    qd, kd, vd = q.to(device), k.to(device), v.to(device)
    got = ops.tree_attention(qd, kd, vd, prefix, mask.to(device), 0.125).cpu()
    torch.testing.assert_close(got.double(), reference_attention(q, k, v, prefix, mask, 0.125), atol=1e-5, rtol=1e-5)
    causal = ops.tree_attention(qd, kd, vd, prefix, None, 0.125).cpu()
    torch.testing.assert_close(causal.double(), reference_attention(q, k, v, prefix, None, 0.125),
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("prefix", [3, 20])  # keys within one 8-wide exp block, and past it
def test_nan_in_a_query_gives_nan_like_the_reference(prefix: int, device: str) -> None:
    """A NaN score is not hidden by the softmax's exp, whether it falls in the vector body or
    the scalar tail: that query's output is NaN, the others are unchanged."""
    g = torch.Generator().manual_seed(7)
    T, H, KVH, D = 2, 2, 1, 16
    q = torch.randn(T, H, D, generator=g)
    k, v = torch.randn(prefix + T, KVH, D, generator=g), torch.randn(prefix + T, KVH, D, generator=g)
    q[1, 0, 3] = float("nan")
    got = ops.tree_attention(q.to(device), k.to(device), v.to(device), prefix, None, 0.25).cpu().view(T, H, D)
    assert torch.isnan(got[1, 0]).all()
    clean = [(0, 0), (0, 1), (1, 1)]
    ref = reference_attention(q, k, v, prefix, None, 0.25).view(T, H, D)
    for t, h in clean:
        torch.testing.assert_close(got[t, h].double(), ref[t, h], atol=1e-5, rtol=1e-5)


@pytest.mark.cuda
def test_half_precision_cuda_matches_cpu(half: tuple[torch.dtype, float]) -> None:
    dtype, tol = half
    g = torch.Generator().manual_seed(5)
    q = torch.randn(5, 4, 64, generator=g)
    k, v = torch.randn(30, 2, 64, generator=g), torch.randn(30, 2, 64, generator=g)
    mask = torch.rand(5, 8, generator=g) < 0.5
    mask[:, 3:] |= torch.eye(5, dtype=torch.bool)
    dev = [t.cuda().to(dtype) for t in (q, k, v)]
    torch.testing.assert_close(ops.tree_attention(*dev, 10, mask.cuda(), 0.125).float().cpu(),
                               ops.tree_attention(q, k, v, 10, mask, 0.125), atol=tol, rtol=tol)


@pytest.mark.parametrize("call", [
    lambda: ops.tree_attention(torch.randn(2, 3, 4), torch.randn(5, 2, 4), torch.randn(5, 2, 4), 0, None, 1.0),
    lambda: ops.tree_attention(torch.randn(2, 2, 4), torch.randn(5, 2, 4), torch.randn(5, 2, 4), 4, None, 1.0),
])
def test_bad_shapes_raise(call) -> None:
    with pytest.raises(RuntimeError):
        call()
