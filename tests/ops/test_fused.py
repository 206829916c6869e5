"""The fused CPU matrix kernels of the decoder block (ops/fused.h) against plain PyTorch:
linear_add_, gate_up_silu, linear_relu, qkv_rope; every weight storage dtype, with and
without biases, T across the 32-row block boundary, split across threads or not."""

from __future__ import annotations

import pytest
import torch

import mtad_ext

ops = mtad_ext.ops
WDTYPES = [torch.float32, torch.float16, torch.bfloat16]
TS = [1, 3, 33, 40]


@pytest.fixture(params=["default", "split"])
def split(request):
    """'split': every kernel splits its work across threads however small (tiny shapes)."""
    prev = ops.set_min_parallel_work(0 if request.param == "split" else 1 << 16)
    yield request.param
    ops.set_min_parallel_work(prev)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def mm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """x @ w.T + b in float64 (w as stored, widened exactly)."""
    return x.double() @ w.double().T + (b.double() if b is not None else 0)


def rope_ref(x: torch.Tensor, pos: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
    """Hugging Face Llama's rotate-half RoPE of x [T, heads, D] (float32 angles)."""
    half = x.shape[-1] // 2
    ang = pos[:, None].float() * inv[None, :]
    cos, sin = torch.cat([ang.cos()] * 2, -1)[:, None].double(), torch.cat([ang.sin()] * 2, -1)[:, None].double()
    rot = torch.cat([-x[..., half:], x[..., :half]], -1)
    return x * cos + rot * sin


@pytest.mark.parametrize("wdtype", WDTYPES)
@pytest.mark.parametrize("T", TS)
@pytest.mark.parametrize("bias", [False, True])
def test_linear_add_(wdtype, T, bias, split):
    g = gen(T)
    x, y = torch.randn(T, 70, generator=g), torch.randn(T, 37, generator=g)
    w = torch.randn(37, 70, generator=g).to(wdtype)  # N and K not multiples of 8
    b = torch.randn(37, generator=g) if bias else None
    expected = y.double() + mm(x, w, b)
    got = y.clone()
    ops.linear_add_(got, x, w, b)
    torch.testing.assert_close(got.double(), expected, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("wdtype", WDTYPES)
@pytest.mark.parametrize("T", TS)
@pytest.mark.parametrize("bias", [False, True])
def test_gate_up_silu(wdtype, T, bias, split):
    g = gen(10 + T)
    x = torch.randn(T, 72, generator=g)
    wg, wu = (torch.randn(45, 72, generator=g).to(wdtype) for _ in range(2))
    bg, bu = (torch.randn(45, generator=g) if bias else None for _ in range(2))
    expected = torch.nn.functional.silu(mm(x, wg, bg)) * mm(x, wu, bu)
    got = ops.gate_up_silu(x, wg, wu, bg, bu)
    torch.testing.assert_close(got.double(), expected, atol=1e-4, rtol=1e-5)
    # The unfused ops compute the same numbers.
    unfused = ops.silu_mul(ops.linear(x, wg, bg), ops.linear(x, wu, bu))
    torch.testing.assert_close(got, unfused, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("wdtype", WDTYPES)
@pytest.mark.parametrize("T", TS)
def test_linear_relu(wdtype, T, split):
    g = gen(20 + T)
    x = torch.randn(T, 64, generator=g)
    w, b = torch.randn(50, 64, generator=g).to(wdtype), torch.randn(50, generator=g)
    expected = mm(x, w, b).clamp_min(0)
    got = ops.linear_relu(x, w, b)
    torch.testing.assert_close(got.double(), expected, atol=1e-4, rtol=1e-5)
    assert (got >= 0).all()


@pytest.mark.parametrize("wdtype", WDTYPES)
@pytest.mark.parametrize("T", TS)
@pytest.mark.parametrize("rope", [True, False])
@pytest.mark.parametrize("bias", [False, True])
def test_qkv_rope(wdtype, T, rope, bias, split):
    g = gen(30 + T)
    H, KVH, D, K, C, start = 6, 2, 24, 80, 50, 7
    x = torch.randn(T, K, generator=g)
    wq = torch.randn(H * D, K, generator=g).to(wdtype)
    wk, wv = (torch.randn(KVH * D, K, generator=g).to(wdtype) for _ in range(2))
    bq, bk, bv = ((torch.randn(n, generator=g) if bias else None) for n in (H * D, KVH * D, KVH * D))
    pos = torch.randint(0, 500, (T,), generator=g)
    inv = 1.0 / (10000.0 ** (torch.arange(0, D, 2).float() / D))
    k_cache, v_cache = torch.full((C, KVH, D), 7.0), torch.full((C, KVH, D), 7.0)
    q = ops.qkv_rope(x, wq, wk, wv, bq, bk, bv, pos if rope else None, inv if rope else None,
                     k_cache[start:start + T], v_cache[start:start + T])
    eq, ek, ev = mm(x, wq, bq).view(T, H, D), mm(x, wk, bk).view(T, KVH, D), mm(x, wv, bv).view(T, KVH, D)
    if rope:
        eq, ek = rope_ref(eq, pos, inv), rope_ref(ek, pos, inv)
    tol = dict(atol=2e-4, rtol=1e-5)
    torch.testing.assert_close(q.double(), eq, **tol)
    torch.testing.assert_close(k_cache[start:start + T].double(), ek, **tol)
    torch.testing.assert_close(v_cache[start:start + T].double(), ev, **tol)
    # Rows outside [start, start + T) are untouched.
    outside = torch.ones(C, dtype=torch.bool)
    outside[start:start + T] = False
    assert (k_cache[outside] == 7.0).all() and (v_cache[outside] == 7.0).all()
    if rope:  # the same as the unfused projections and ops.rope_
        uq = ops.linear(x, wq, bq).view(T, H, D)
        ops.rope_(uq, pos, inv)
        torch.testing.assert_close(q, uq, atol=1e-5, rtol=1e-5)
    k2, v2 = torch.empty(T, KVH, D), torch.empty(T, KVH, D)
    # Fresh output buffers instead of cache rows: the same numbers.
    q2 = ops.qkv_rope(x, wq, wk, wv, bq, bk, bv, pos if rope else None, inv if rope else None, k2, v2)
    torch.testing.assert_close(q2, q, atol=0, rtol=0)
    torch.testing.assert_close(k2, k_cache[start:start + T], atol=0, rtol=0)


@pytest.mark.parametrize("call", [
    lambda: ops.linear_add_(torch.zeros(2, 4), torch.randn(2, 3), torch.randn(4, 5)),
    lambda: ops.linear_add_(torch.zeros(2, 5), torch.randn(2, 3), torch.randn(4, 3)),
    lambda: ops.gate_up_silu(torch.randn(2, 3), torch.randn(4, 3), torch.randn(5, 3)),
    lambda: ops.gate_up_silu(torch.randn(2, 3), torch.randn(4, 3), torch.randn(4, 3).half()),
    lambda: ops.linear_relu(torch.randn(2, 3), torch.randn(4, 3), torch.randn(5)),
    lambda: ops.qkv_rope(torch.randn(2, 8), torch.randn(8, 8), torch.randn(4, 8), torch.randn(4, 8), None, None, None,
                         None, None, torch.empty(2, 1, 3), torch.empty(2, 1, 3)),  # KVH * D != 4
    lambda: ops.qkv_rope(torch.randn(2, 8), torch.randn(8, 8), torch.randn(4, 8), torch.randn(4, 8), None, None, None,
                         torch.tensor([0, 1]), torch.ones(3), torch.empty(2, 1, 4), torch.empty(2, 1, 4)),
])
def test_bad_shapes_raise(call):
    with pytest.raises(RuntimeError):
        call()


@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_cuda_matches_cpu(dtype):
    g = gen(5)
    tol = {torch.float16: 2e-2, torch.bfloat16: 1e-1}[dtype]
    x, y = torch.randn(5, 64, generator=g), torch.randn(5, 32, generator=g)
    w, w2, b = torch.randn(32, 64, generator=g), torch.randn(32, 64, generator=g), torch.randn(32, generator=g)
    dev = lambda t: t.cuda().to(dtype)  # noqa: E731
    got = dev(y)
    ops.linear_add_(got, dev(x), dev(w), dev(b))
    expected = y.clone()
    ops.linear_add_(expected, x, w, b)
    torch.testing.assert_close(got.float().cpu(), expected, atol=tol * 10, rtol=tol)
    torch.testing.assert_close(ops.gate_up_silu(dev(x), dev(w), dev(w2), dev(b), None).float().cpu(),
                               ops.gate_up_silu(x, w, w2, b, None), atol=tol * 10, rtol=tol)
    torch.testing.assert_close(ops.linear_relu(dev(x), dev(w), dev(b)).float().cpu(), ops.linear_relu(x, w, b),
                               atol=tol * 10, rtol=tol)
    pos, inv = torch.arange(5), 1.0 / (10000.0 ** (torch.arange(0, 16, 2).float() / 16))
    k, v, kd, vd = torch.empty(5, 2, 16), torch.empty(5, 2, 16), dev(torch.empty(5, 2, 16)), dev(torch.empty(5, 2, 16))
    q = ops.qkv_rope(x, w, w2, w, None, None, None, pos, inv, k, v)
    qd = ops.qkv_rope(dev(x), dev(w), dev(w2), dev(w), None, None, None, pos.cuda(), inv.cuda(), kd, vd)
    for a, c in ((qd, q), (kd, k), (vd, v)):
        torch.testing.assert_close(a.float().cpu(), c, atol=tol * 10, rtol=tol)
