"""Helpers the decoding-method tests share: run a Decoder for n tokens, and hold a cache to
the one a fresh forward over the same tokens makes."""

from __future__ import annotations

import torch

import mtad_ext

GREEDY = dict(temperature=0.0, top_k=0, top_p=1.0)
# The paper's sampling settings (algorithms.md 3).
SAMPLED = dict(temperature=1.0, top_k=10, top_p=0.9)
# A fixed SmolLM2 chat prompt, as token ids.
SMOL_PROMPT = [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3717, 3057, 2, 198, 1, 4093, 198]


def run(decoder: mtad_ext.Decoder, prompt: list[int], n: int) -> list[int]:
    decoder.start(prompt)
    while len(decoder.tokens) < len(prompt) + n:
        emitted = decoder.step()
        assert len(emitted) >= 1
    return decoder.tokens[len(prompt):]


def assert_caches_rebuilt(
    model: mtad_ext.Model, cache: mtad_ext.KVCache, tokens: list[int], atol: float = 1e-5
) -> None:
    """The cache holds the K/V a fresh forward over the same tokens makes (up to the
    summation order of one prefill against many steps)."""
    n = cache.length
    assert n <= len(tokens)
    fresh = model.new_cache(max(n, 1))
    if n:
        model.forward(fresh, torch.tensor(tokens[:n]))
    torch.testing.assert_close(cache.k[:, :n], fresh.k[:, :n], atol=atol, rtol=1e-4)
    torch.testing.assert_close(cache.v[:, :n], fresh.v[:, :n], atol=atol, rtol=1e-4)
