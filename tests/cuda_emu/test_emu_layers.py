"""The layer kernels (norms.cu, rope.cu, activations.cu, tree_attention.cu) under the CUDA
emulation against their CPU twins in mtad_ext.ops. The CPU ops compute in float32; for
float16 / bfloat16 the twin is the float32 op on the upcast inputs, rounded where the
kernel rounds (the kernels accumulate in float32 as well), so the two agree to the last bit
or two of the storage type."""

from __future__ import annotations

import pytest
import torch

from .cases import attention_case, close, rope_inputs
from .emu import Emu

DTYPES = [torch.float32, torch.float16, torch.bfloat16]




@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [1, 31, 64, 100, 576, 1000, 2048, 4099])
def test_rms_norm(emu: Emu, ops, dtype: torch.dtype, dim: int) -> None:
    rows = 3 if dim > 1000 else 5
    x = (torch.randn(rows, dim) * 3).to(dtype)
    w = (torch.rand(dim) + 0.5).to(dtype)
    got = emu.rms_norm(x, w, 1e-6)
    # Hugging Face Llama: the normalised row is rounded to the storage type before the weight.
    normed = ops.rms_norm(x.float(), torch.ones(dim), 1e-6).to(dtype)
    want = (w.float() * normed.float()).to(dtype) if dtype != torch.float32 else ops.rms_norm(x, w, 1e-6)
    close(got, want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("dim", [1, 40, 128, 768, 3000])
@pytest.mark.parametrize("affine", [True, False])
def test_layer_norm(emu: Emu, ops, dtype: torch.dtype, dim: int, affine: bool) -> None:
    x = (torch.randn(4, dim) * 2 + 5).to(dtype)  # |mean| >> std: the two-pass variance matters
    w = (torch.rand(dim) + 0.5).to(dtype) if affine else None
    b = torch.randn(dim).to(dtype) if affine else None
    got = emu.layer_norm(x, w, b, 1e-5)
    want = ops.layer_norm(x.float(), None if w is None else w.float(), None if b is None else b.float(), 1e-5)
    close(got, want.to(dtype), scale=4.0 if dim == 1 else 1.0)


def test_norms_keep_nan_rows_apart(emu: Emu, ops) -> None:
    """A NaN poisons its own row only (one block per row, no shared state across rows)."""
    x = torch.randn(6, 300)
    x[2, 17] = float("nan")
    got = emu.rms_norm(x, torch.ones(300), 1e-6)
    assert got[2].isnan().all() and not got[[0, 1, 3, 4, 5]].isnan().any()
    close(got, ops.rms_norm(x, torch.ones(300), 1e-6))




@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("D", [32, 64, 80, 128, 256])
@pytest.mark.parametrize("T,heads", [(1, 9), (5, 3), (17, 4)])
def test_rope(emu: Emu, ops, dtype: torch.dtype, D: int, T: int, heads: int) -> None:
    x, positions, inv_freq = rope_inputs(T, heads, D, dtype)
    got = x.clone()
    emu.rope_(got, positions, inv_freq)
    want = x.float().contiguous()
    ops.rope_(want, positions, inv_freq)
    close(got, want.to(dtype))


def special_values(n: int, dtype: torch.dtype) -> torch.Tensor:
    x = torch.randn(n) * 4
    specials = torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0, -0.0, -100.0, 100.0])
    x[: min(n, len(specials))] = specials[: min(n, len(specials))]
    return x.to(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 255, 256, 1000, 70001])
def test_silu_mul(emu: Emu, ops, dtype: torch.dtype, n: int) -> None:
    gate, up = special_values(n, dtype), torch.randn(n).to(dtype)
    got = emu.silu_mul(gate, up)
    close(got, ops.silu_mul(gate.float(), up.float()).to(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 255, 256, 1000, 70001])
def test_relu(emu: Emu, ops, dtype: torch.dtype, n: int) -> None:
    x = special_values(n, dtype)
    got = x.clone()
    emu.relu_(got)
    want = x.float().clone()
    ops.relu_(want)
    assert torch.equal(got.float().nan_to_num(7.0), want.to(dtype).float().nan_to_num(7.0))


def test_relu_stays_in_bounds(emu: Emu) -> None:
    """n elements of a longer buffer: the elements past n are not touched."""
    buf = -torch.ones(1000)
    emu.relu_(buf, n=700)
    assert (buf[:700] == 0).all() and (buf[700:] == -1).all()


# -- tree attention -------------------------------------------------------------------------





HEADS = {"mha": (4, 4), "gqa": (8, 2), "mqa": (6, 1)}


@pytest.mark.parametrize("D", [32, 48, 64, 96, 128, 200, 256])
@pytest.mark.parametrize("heads", list(HEADS))
@pytest.mark.parametrize("mask_kind", ["causal", "tree"])
def test_tree_attention_f32(emu: Emu, ops, D: int, heads: str, mask_kind: str) -> None:
    H, KVH = HEADS[heads]
    attention_case(emu, ops, torch.float32, D, H, KVH, T=4, prefix=23, mask_kind=mask_kind)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("D", [32, 64, 128, 256])
@pytest.mark.parametrize("heads", list(HEADS))
@pytest.mark.parametrize("mask_kind", ["causal", "tree"])
def test_tree_attention_half(emu: Emu, ops, dtype: torch.dtype, D: int, heads: str, mask_kind: str) -> None:
    H, KVH = HEADS[heads]
    attention_case(emu, ops, dtype, D, H, KVH, T=3, prefix=9, mask_kind=mask_kind)


@pytest.mark.emu_heavy
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("prefix,T,heads", [(1000, 1, "gqa"), (997, 3, "mqa"), (300, 6, "mha"), (0, 7, "gqa")])
def test_tree_attention_long_prefix(emu: Emu, ops, dtype: torch.dtype, prefix: int, T: int, heads: str) -> None:
    """Prefixes of about a thousand slots (16 warps per block, several online-softmax
    rescalings per warp), and none at all."""
    H, KVH = HEADS[heads]
    attention_case(emu, ops, dtype, 64, H, KVH, T=T, prefix=prefix, mask_kind="tree")


@pytest.mark.parametrize("dtype", DTYPES)
def test_tree_attention_row_with_nothing_to_attend(emu: Emu, ops, dtype: torch.dtype) -> None:
    attention_case(emu, ops, dtype, 64, 4, 2, T=4, prefix=0, mask_kind="empty_row")


@pytest.mark.emu_heavy
def test_tree_attention_many_rows_use_8_warps(emu: Emu, ops) -> None:
    """>= 512 (token, head) rows with a long scan: the 8-warp configuration."""
    attention_case(emu, ops, torch.float32, 32, 64, 8, T=8, prefix=260, mask_kind="causal")
