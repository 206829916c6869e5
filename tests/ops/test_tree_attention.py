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
