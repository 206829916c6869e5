"""ops/rope.h: rotary embedding in place, the rotate-half form, on each backend."""

from __future__ import annotations

import pytest
import torch

import mtad_ext

ops = mtad_ext.ops


def rotate_half(x: torch.Tensor, pos: torch.Tensor, inv: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    ang = pos[:, None].float() * inv[None, :]
    cos, sin = torch.cat([ang.cos()] * 2, -1)[:, None], torch.cat([ang.sin()] * 2, -1)[:, None]
    return x * cos + torch.cat([-x[..., half:], x[..., :half]], -1) * sin


def test_rope_is_rotate_half(device: str) -> None:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(4, 3, 16, generator=g)
    pos = torch.tensor([0, 5, 100, 7])
    inv = 1.0 / (10000.0 ** (torch.arange(0, 16, 2).float() / 16))
    y = x.clone().to(device)  # rope_ works in place
    ops.rope_(y, pos.to(device), inv.to(device))
    torch.testing.assert_close(y.cpu(), rotate_half(x, pos, inv), atol=1e-5, rtol=1e-5)


@pytest.mark.cuda
def test_half_precision_cuda_matches_cpu(half: tuple[torch.dtype, float]) -> None:
    dtype, tol = half
    g = torch.Generator().manual_seed(5)
    q = torch.randn(5, 4, 64, generator=g)
    pos, inv = torch.tensor([0, 3, 9, 100, 2]), 1.0 / (10000.0 ** (torch.arange(0, 64, 2).float() / 64))
    a, b = q.clone(), q.cuda().to(dtype)
    ops.rope_(a, pos, inv)
    ops.rope_(b, pos.cuda(), inv.cuda())
    torch.testing.assert_close(b.float().cpu(), a, atol=tol * 10, rtol=tol)
