"""Half-precision weights on the CPU against the float32 path on SmolLM2: a stated logit
tolerance, and 64 greedy tokens equal or the first difference a near-tie."""

from __future__ import annotations

import pytest
import torch

import mtad_ext

pytestmark = pytest.mark.smollm2

# Largest logit deviation allowed (logits spread ~7): fp16 keeps 11 significant bits of
# each weight, bfloat16 8; measured 0.04 and 0.28 on the chat prompt below.
TOLERANCE = {"float16": 0.1, "bfloat16": 0.6}
PROMPT = [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3717, 3057, 2, 198, 1, 4093, 198,
          19165, 253, 1345, 2256, 563, 253, 14066, 28, 2, 198, 1, 520, 9531, 198]


@pytest.fixture(scope="module")
def f32(smollm2_dir):
    return mtad_ext.load_model(str(smollm2_dir))


def greedy(model: mtad_ext.Model, n: int) -> list[int]:
    dec = mtad_ext.Decoder(model, method="ar", temperature=0.0, top_k=0, top_p=1.0, capacity=256)
    dec.start(PROMPT)
    while len(dec.tokens) < len(PROMPT) + n:
        dec.step()
    return dec.tokens[len(PROMPT):len(PROMPT) + n]


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_weights_track_float32(smollm2_dir, f32, dtype):
    half = mtad_ext.load_model(str(smollm2_dir), dtype=dtype)
    a = f32.forward(f32.new_cache(64), torch.tensor(PROMPT))
    b = half.forward(half.new_cache(64), torch.tensor(PROMPT))
    assert (a - b).abs().max().item() < TOLERANCE[dtype]

    ref, got = greedy(f32, 64), greedy(half, 64)
    if ref != got:
        i = next(k for k in range(64) if ref[k] != got[k])
        logits = f32.forward(f32.new_cache(256), torch.tensor(PROMPT + ref[:i]))[-1]
        gap = (logits[ref[i]] - logits[got[i]]).item()
        assert gap < 2 * TOLERANCE[dtype], f"token {i}: {ref[i]} vs {got[i]} is no near-tie (gap {gap:.3f})"
