"""ops/linear.h: x @ W^T + b for float32, float16 and bfloat16 weights, against float64."""

from __future__ import annotations

import pytest
import torch

import mtad_ext

ops = mtad_ext.ops


@pytest.mark.parametrize("wdtype", [torch.float32, torch.float16, torch.bfloat16])
@pytest.mark.parametrize("T", [1, 3, 16, 17, 40])
@pytest.mark.parametrize("bias", [False, True])
def test_linear(wdtype: torch.dtype, T: int, bias: bool) -> None:
    g = torch.Generator().manual_seed(T)
    x = torch.randn(T, 70, generator=g)
    w = torch.randn(37, 70, generator=g).to(wdtype)  # N and K not multiples of 8
    b = torch.randn(37, generator=g) if bias else None
    expected = x.double() @ w.double().T + (b.double() if bias else 0)
    torch.testing.assert_close(ops.linear(x, w, b).double(), expected, atol=1e-4, rtol=1e-5)


def test_bad_shapes_raise() -> None:
    with pytest.raises(RuntimeError):
        ops.linear(torch.randn(2, 3), torch.randn(4, 5))
