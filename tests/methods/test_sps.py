"""Speculative sampling (algorithms.md 2): greedy SpS emits exactly greedy AR's tokens, on
tiny random models and on SmolLM2 with a weak draft."""

from __future__ import annotations

import pytest
from decoding import GREEDY, SMOL_PROMPT, run

import mtad_ext


@pytest.mark.parametrize("arch", ["llama_gqa_tied", "opt_pre_ln"])
def test_greedy_sps_equals_greedy_ar(tiny, arch):
    target = tiny[arch]
    draft = tiny["opt_pre_ln" if arch == "llama_gqa_tied" else "llama_gqa_tied"]
    prompt = [11, 22, 33]
    ar = run(mtad_ext.Decoder(target, None, method="ar", capacity=128, **GREEDY), prompt, 30)
    sps = run(mtad_ext.Decoder(target, draft, method="sps", gamma=4, capacity=128, **GREEDY), prompt, 30)
    assert sps[:30] == ar[:30]




@pytest.mark.smollm2
def test_smollm2_greedy_sps_equals_ar(smol):
    target, draft = smol
    ar = run(mtad_ext.Decoder(target, method="ar", capacity=256, **GREEDY), SMOL_PROMPT, 32)
    dec = mtad_ext.Decoder(target, draft, method="sps", gamma=4, capacity=256, **GREEDY)
    sps = run(dec, SMOL_PROMPT, 32)
    assert sps[:32] == ar[:32]
    assert dec.total_stats["accepted"] > 0
