"""ops/norms.h: RMSNorm and LayerNorm against their definitions, on each backend."""

from __future__ import annotations

import pytest
import torch

import mtad_ext

ops = mtad_ext.ops


def test_rms_norm_and_layer_norm(device: str) -> None:
    g = torch.Generator().manual_seed(1)
    x, w, b = (t.to(device) for t in (torch.randn(5, 96, generator=g), torch.randn(96, generator=g),
                                      torch.randn(96, generator=g)))
    rms = w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5))
    torch.testing.assert_close(ops.rms_norm(x, w, 1e-5), rms, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ops.layer_norm(x, w, b, 1e-5), torch.nn.functional.layer_norm(x, (96,), w, b, 1e-5),
                               atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ops.layer_norm(x, None, None, 1e-5),
                               torch.nn.functional.layer_norm(x, (96,), eps=1e-5), atol=1e-5, rtol=1e-5)


@pytest.mark.cuda
def test_half_precision_cuda_matches_cpu(half: tuple[torch.dtype, float]) -> None:
    dtype, tol = half
    g = torch.Generator().manual_seed(5)
    x, w = torch.randn(7, 64, generator=g), torch.randn(64, generator=g)
    torch.testing.assert_close(ops.rms_norm(x.cuda().to(dtype), w.cuda().to(dtype), 1e-5).float().cpu(),
                               ops.rms_norm(x, w, 1e-5), atol=tol, rtol=tol)
    torch.testing.assert_close(ops.layer_norm(x.cuda().to(dtype), w.cuda().to(dtype), None, 1e-5).float().cpu(),
                               ops.layer_norm(x, w, None, 1e-5), atol=tol, rtol=tol)


def test_bad_shapes_raise() -> None:
    with pytest.raises(RuntimeError):
        ops.rms_norm(torch.randn(2, 3), torch.randn(4), 1e-5)
