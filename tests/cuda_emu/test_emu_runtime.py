"""The emulation itself, on the unmodified kernels: an error inside a running block names
the line and leaves the emulation usable, the thread order does not change the results of
correct kernels, and the launchers' own argument checks come back as errors."""

from __future__ import annotations

import re

import pytest
import torch

from .cases import attention_case, random_tree_mask
from .emu import Emu, EmuError


def test_error_inside_a_block_names_the_line_and_recovers(emu: Emu, ops) -> None:
    logits = torch.randn(2, 500)
    old = emu.set_static_smem_limit(1024)
    try:
        with pytest.raises(EmuError, match=r"csrc/ops/cuda/sampling\.cu:\d+: __shared__ sm brings the block's static "
                                           r"shared memory to \d+ bytes, past the 1024"):
            emu.normalize(logits, 1.0, 0, 0.9)
    finally:
        emu.set_static_smem_limit(old)
    # The abandoned block left nothing behind: the next launches run normally.
    got = emu.normalize(logits, 1.0, 0, 0.9)
    torch.testing.assert_close(got, ops.normalize(logits, 1.0, 0, 0.9), rtol=1e-5, atol=2e-5)
    attention_case(emu, ops, torch.float32, 64, 4, 2, T=3, prefix=20, mask_kind="tree")


def test_thread_order_does_not_change_correct_results(emu: Emu) -> None:
    gen = torch.Generator().manual_seed(3)
    q, k, v = torch.randn(3, 4, 64, generator=gen), torch.randn(300, 2, 64, generator=gen), torch.randn(
        300, 2, 64, generator=gen)
    mask = random_tree_mask(8, 3, gen)
    x = torch.randn(5, 700, generator=gen)
    before = emu.order()
    outs = []
    try:
        for order in ("forward", "reverse", "random"):
            emu.set_order(order, seed=11)
            outs.append((emu.tree_attention(q, k, v, 280, mask, 0.125), emu.rms_norm(x, torch.ones(700), 1e-6),
                         emu.sample(torch.log_softmax(x, 1), 5, 0)))
    finally:
        emu.set_order(before)
    for other in outs[1:]:
        for a, b in zip(outs[0], other, strict=True):
            assert torch.equal(a, b)


@pytest.mark.parametrize("call,message", [
    (lambda e: e.rope_(torch.randn(2, 3, 5), torch.zeros(2, dtype=torch.int64), torch.ones(2)),
     "head dim must be even"),
    (lambda e: e.tree_attention(torch.randn(1, 2, 300), torch.randn(4, 1, 300), torch.randn(4, 1, 300), 3, None, 1.0),
     "head dim 300 exceeds the supported maximum of 256"),
    (lambda e: e.tree_attention(torch.randn(1, 3, 8), torch.randn(4, 2, 8), torch.randn(4, 2, 8), 3, None, 1.0),
     "query heads must be a positive multiple of kv heads"),
    (lambda e: e.sample(torch.zeros(2, 0), 0, 0), "rows without tokens"),
])
def test_launcher_checks_come_back_as_errors(emu: Emu, call, message: str) -> None:
    with pytest.raises(EmuError, match=re.escape(message)):
        call(emu)
