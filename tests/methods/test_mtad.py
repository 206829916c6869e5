"""MTAD and multi-candidate MTAD (algorithms.md 3) on SmolLM2 with a weak draft: more than
one token per target forward at the paper's settings, caches equal to rebuilt ones; on the
tiny models, beams that die while drafting (fewer candidates than the width)."""

from __future__ import annotations

import pytest
from decoding import GREEDY, SAMPLED, SMOL_PROMPT, assert_caches_rebuilt, run

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


@pytest.mark.parametrize("method", ["mtad", "mtad-tree"])
@pytest.mark.parametrize("with_replacement", [False, True])
def test_dying_beams_leave_the_target_the_live_ones(tiny, method: str, with_replacement: bool) -> None:
    """A draft keeping 2 tokens per row with width 3: without replacement a beam dies at depth
    1 at least (beam_step_padded feeds it on as a dead row, -inf). The target verifies the
    live beams only, a greedy target still gives greedy AR's tokens, both caches hold exactly
    the committed tokens, and a step reads the host twice."""
    target, draft = tiny["llama_gqa_tied"], tiny["opt_pre_ln"]
    narrow = dict(GREEDY, draft_temperature=1.0, draft_top_k=2, draft_top_p=1.0)
    ar = run(mtad_ext.Decoder(target, method="ar", capacity=128, **GREEDY), [5, 17, 42], 30)
    width, gamma = 3, 3
    dec = mtad_ext.Decoder(target, draft, method=method, gamma=gamma, width=width, seed=4, capacity=128,
                           with_replacement=with_replacement, **narrow)
    dec.start([5, 17, 42])
    drafted = []
    while len(dec.tokens) < 3 + 30:
        dec.step()
        drafted.append(dec.last_stats["drafted"])
        assert dec.last_stats["host_reads"] == 2
    assert dec.tokens[3:33] == ar[:30]
    if method == "mtad":
        assert set(drafted) == {gamma}
    elif not with_replacement:
        assert max(drafted) < width * gamma  # the dead beams never reach the target
    else:
        assert set(drafted) == {width * gamma}  # draws with replacement never die
    assert_caches_rebuilt(target, dec.target_cache, dec.tokens)
    assert_caches_rebuilt(draft, dec.draft_cache, dec.tokens)
