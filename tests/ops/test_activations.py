"""ops/activations.h: SiLU-and-multiply and ReLU, on each backend."""

from __future__ import annotations

import pytest
import torch

import mtad_ext

ops = mtad_ext.ops


def test_activations(device: str) -> None:
    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(300, generator=g).to(device), torch.randn(300, generator=g).to(device)
    torch.testing.assert_close(ops.silu_mul(a, b), torch.nn.functional.silu(a) * b, atol=1e-6, rtol=1e-5)
    r = a.clone()
    ops.relu_(r)
    torch.testing.assert_close(r, a.clamp_min(0))


def test_relu_lets_nan_through(device: str) -> None:
    """As torch.relu and the CUDA kernel: NaN stays NaN (it used to become 0 on the CPU)."""
    x = torch.tensor([float("nan"), -1.0, 2.0], device=device)
    ops.relu_(x)
    assert x[0].isnan() and x[1:].tolist() == [0.0, 2.0]
    y = ops.linear_relu(torch.ones(1, 1), torch.tensor([[float("nan")], [-1.0]]))
    assert y[0, 0].isnan() and y[0, 1] == 0


@pytest.mark.cuda
def test_half_precision_cuda_matches_cpu(half: tuple[torch.dtype, float]) -> None:
    dtype, tol = half
    g = torch.Generator().manual_seed(5)
    gte, up = torch.randn(100, generator=g), torch.randn(100, generator=g)
    torch.testing.assert_close(ops.silu_mul(gte.cuda().to(dtype), up.cuda().to(dtype)).float().cpu(),
                               ops.silu_mul(gte, up), atol=tol, rtol=tol)
