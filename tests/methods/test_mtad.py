"""MTAD and multi-candidate MTAD (algorithms.md 3) on SmolLM2 with a weak draft: more than
one token per target forward at the paper's settings, caches equal to rebuilt ones."""

from __future__ import annotations

import pytest
from decoding import SAMPLED, SMOL_PROMPT, assert_caches_rebuilt, run

import mtad_ext


@pytest.mark.smollm2
@pytest.mark.parametrize("method", ["mtad", "mtad-tree"])
def test_smollm2_mtad_emits_more_than_one_token_per_forward(smol, method):
    target, draft = smol
    dec = mtad_ext.Decoder(target, draft, method=method, gamma=4, width=4, seed=0, capacity=256, **SAMPLED)
    run(dec, SMOL_PROMPT, 48)
    s = dec.total_stats
    assert s["emitted"] / s["target_forwards"] > 1.0, s
    # 30 real layers: K/V of magnitude ~1-10, so float32 reordering shows at ~1e-5.
    assert_caches_rebuilt(target, dec.target_cache, dec.tokens, atol=1e-4)
    assert_caches_rebuilt(draft, dec.draft_cache, dec.tokens, atol=1e-4)
