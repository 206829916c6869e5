"""The model's CPU kernels against plain PyTorch versions of their definitions, and CUDA
against CPU (GPU only)."""

from __future__ import annotations

import pytest
import torch

import mtad_ext

ops = mtad_ext.ops
cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("wdtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("T", [1, 3, 16, 17, 40])
@pytest.mark.parametrize("bias", [False, True])
def test_linear(wdtype, T, bias):
    g = gen(T)
    x = torch.randn(T, 70, generator=g)
    w = torch.randn(37, 70, generator=g).to(wdtype)  # N and K not multiples of 8
    b = torch.randn(37, generator=g) if bias else None
    expected = x.double() @ w.double().T + (b.double() if bias else 0)
    torch.testing.assert_close(ops.linear(x, w, b).double(), expected, atol=1e-4, rtol=1e-5)


def test_rms_norm_and_layer_norm():
    g = gen(1)
    x, w, b = torch.randn(5, 96, generator=g), torch.randn(96, generator=g), torch.randn(96, generator=g)
    rms = w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5))
    torch.testing.assert_close(ops.rms_norm(x, w, 1e-5), rms, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ops.layer_norm(x, w, b, 1e-5), torch.nn.functional.layer_norm(x, (96,), w, b, 1e-5),
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ops.layer_norm(x, None, None, 1e-5),
                               torch.nn.functional.layer_norm(x, (96,), eps=1e-5), atol=1e-5, rtol=1e-5)


def test_rope_is_rotate_half():
    g = gen(2)
    x = torch.randn(4, 3, 16, generator=g)
    pos = torch.tensor([0, 5, 100, 7])
    inv = 1.0 / (10000.0 ** (torch.arange(0, 16, 2).float() / 16))
    ang = pos[:, None].float() * inv[None, :]
    cos, sin = torch.cat([ang.cos()] * 2, -1)[:, None], torch.cat([ang.sin()] * 2, -1)[:, None]
    rot = torch.cat([-x[..., 8:], x[..., :8]], -1)
    expected = x * cos + rot * sin
    y = x.clone()
    ops.rope_(y, pos, inv)
    torch.testing.assert_close(y, expected, atol=1e-5, rtol=1e-5)


def reference_attention(q, k, v, prefix, mask, scale):
    T, H, D = q.shape
    M = mask.shape[1] if mask is not None else T
    KVH = k.shape[1]
    keys = prefix + M
    allowed = torch.ones(T, keys, dtype=torch.bool)
    allowed[:, prefix:] = mask if mask is not None else torch.ones(T, T, dtype=torch.bool).tril()
    out = torch.zeros(T, H, D, dtype=torch.float64)
    for h in range(H):
        kk, vv = k[:keys, h // (H // KVH)].double(), v[:keys, h // (H // KVH)].double()
        s = (q[:, h].double() @ kk.T) * scale
        s = s.masked_fill(~allowed, float("-inf"))
        out[:, h] = torch.softmax(s, -1) @ vv
    return out.reshape(T, H * D)


@pytest.mark.parametrize("region", [0, 5])  # extra cached tree nodes ruled by the mask
def test_tree_attention(region):
    g = gen(3 + region)
    T, H, KVH, D, C, prefix = 6, 6, 2, 32, 40, 11
    q = torch.randn(T, H, D, generator=g)
    k, v = torch.randn(C, KVH, D, generator=g), torch.randn(C, KVH, D, generator=g)
    mask = torch.rand(T, region + T, generator=g) < 0.5
    mask[:, region:] |= torch.eye(T, dtype=torch.bool)
    got = ops.tree_attention(q, k, v, prefix, mask, 0.125)
    torch.testing.assert_close(got.double(), reference_attention(q, k, v, prefix, mask, 0.125), atol=1e-5, rtol=1e-5)
    causal = ops.tree_attention(q, k, v, prefix, None, 0.125)
    torch.testing.assert_close(causal.double(), reference_attention(q, k, v, prefix, None, 0.125),
                               atol=1e-5, rtol=1e-5)


def test_activations():
    g = gen(4)
    a, b = torch.randn(300, generator=g), torch.randn(300, generator=g)
    torch.testing.assert_close(ops.silu_mul(a, b), torch.nn.functional.silu(a) * b, atol=1e-6, rtol=1e-5)
    r = a.clone()
    ops.relu_(r)
    torch.testing.assert_close(r, a.clamp_min(0))


def test_relu_lets_nan_through():
    """As torch.relu and the CUDA kernel: NaN stays NaN (it used to become 0 on the CPU)."""
    x = torch.tensor([float("nan"), -1.0, 2.0])
    ops.relu_(x)
    assert x[0].isnan() and x[1:].tolist() == [0.0, 2.0]
    y = ops.linear_relu(torch.ones(1, 1), torch.tensor([[float("nan")], [-1.0]]))
    assert y[0, 0].isnan() and y[0, 1] == 0


@pytest.mark.parametrize("call", [
    lambda: ops.linear(torch.randn(2, 3), torch.randn(4, 5)),
    lambda: ops.rms_norm(torch.randn(2, 3), torch.randn(4), 1e-5),
    lambda: ops.tree_attention(torch.randn(2, 3, 4), torch.randn(5, 2, 4), torch.randn(5, 2, 4), 0, None, 1.0),
    lambda: ops.tree_attention(torch.randn(2, 2, 4), torch.randn(5, 2, 4), torch.randn(5, 2, 4), 4, None, 1.0),
])
def test_bad_shapes_raise(call):
    with pytest.raises(RuntimeError):
        call()


@cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_cuda_matches_cpu(dtype):
    g = gen(5)
    tol = {torch.float32: 1e-4, torch.float16: 2e-2, torch.bfloat16: 1e-1}[dtype]
    x, w = torch.randn(7, 64, generator=g), torch.randn(64, generator=g)
    torch.testing.assert_close(ops.rms_norm(x.cuda().to(dtype), w.cuda().to(dtype), 1e-5).float().cpu(),
                               ops.rms_norm(x, w, 1e-5), atol=tol, rtol=tol)
    torch.testing.assert_close(ops.layer_norm(x.cuda().to(dtype), w.cuda().to(dtype), None, 1e-5).float().cpu(),
                               ops.layer_norm(x, w, None, 1e-5), atol=tol, rtol=tol)
    q = torch.randn(5, 4, 64, generator=g)
    k, v = torch.randn(30, 2, 64, generator=g), torch.randn(30, 2, 64, generator=g)
    mask = torch.rand(5, 8, generator=g) < 0.5
    mask[:, 3:] |= torch.eye(5, dtype=torch.bool)
    dev = [t.cuda().to(dtype) for t in (q, k, v)]
    torch.testing.assert_close(ops.tree_attention(*dev, 10, mask.cuda(), 0.125).float().cpu(),
                               ops.tree_attention(q, k, v, 10, mask, 0.125), atol=tol, rtol=tol)
    pos, inv = torch.tensor([0, 3, 9, 100, 2]), 1.0 / (10000.0 ** (torch.arange(0, 64, 2).float() / 64))
    a, b = q.clone(), q.cuda().to(dtype)
    ops.rope_(a, pos, inv)
    ops.rope_(b, pos.cuda(), inv.cuda())
    torch.testing.assert_close(b.float().cpu(), a, atol=tol * 10, rtol=tol)
    gte, up = torch.randn(100, generator=g), torch.randn(100, generator=g)
    torch.testing.assert_close(ops.silu_mul(gte.cuda().to(dtype), up.cuda().to(dtype)).float().cpu(),
                               ops.silu_mul(gte, up), atol=tol, rtol=tol)
