"""What every drafting method (SpS, MTAD, multi-candidate MTAD) guarantees, on tiny random
models: a draft equal to the target is always accepted, caches stay what a fresh forward
makes, seeds reproduce; and the Decoder's parameter checks."""

from __future__ import annotations

import pytest
from decoding import SAMPLED, assert_caches_rebuilt, run
from tiny_models import VOCAB, save_tiny

import mtad_ext

METHODS = ["sps", "mtad", "mtad-tree"]








@pytest.mark.parametrize("arch", ["llama_gqa_tied", "opt_pre_ln"])
@pytest.mark.parametrize("method", METHODS)
def test_draft_equal_to_target_accepts_everything(tiny, arch, method):
    model = tiny[arch]
    dec = mtad_ext.Decoder(model, model, method=method, gamma=4, width=3, seed=7, capacity=128, **SAMPLED)
    dec.start([5, 17, 42, 9])
    for _ in range(6):
        dec.step()
        s = dec.last_stats
        assert s["accepted"] == 4, s
        assert s["emitted"] == 5
    total = dec.total_stats
    assert total["target_forwards"] == 6


@pytest.mark.parametrize("arch", ["llama_gqa_tied", "opt_pre_ln"])
@pytest.mark.parametrize("method", METHODS)
def test_caches_equal_rebuilt_caches(tiny, arch, method):
    target = tiny[arch]
    draft = tiny["opt_pre_ln" if arch == "llama_gqa_tied" else "llama_gqa_tied"]
    dec = mtad_ext.Decoder(target, draft, method=method, gamma=3, width=3, seed=1, capacity=128, **SAMPLED)
    run(dec, [3, 1, 4, 1, 5], 40)
    assert dec.target_cache.length == len(dec.tokens) - 1
    assert_caches_rebuilt(target, dec.target_cache, dec.tokens)
    assert_caches_rebuilt(draft, dec.draft_cache, dec.tokens)






@pytest.mark.parametrize("method", ["ar", *METHODS])
def test_seed_reproduces_and_varies(tiny, method):
    target, draft = tiny["llama_gqa_tied"], tiny["opt_pre_ln"]

    def gen(seed: int) -> list[int]:
        return run(mtad_ext.Decoder(target, draft, method=method, seed=seed, capacity=128, **SAMPLED), [1, 2], 24)

    assert gen(3) == gen(3)
    assert gen(3) != gen(4)


def test_bad_parameters_raise(tiny):
    m = tiny["llama_gqa_tied"]
    with pytest.raises(mtad_ext.InputError, match="needs a draft"):
        mtad_ext.Decoder(m, None, method="mtad")
    with pytest.raises(mtad_ext.InputError, match="method 'beam'"):
        mtad_ext.Decoder(m, m, method="beam")
    with pytest.raises(mtad_ext.InputError, match="temperature"):
        mtad_ext.Decoder(m, None, temperature=-1)
    with pytest.raises(mtad_ext.InputError, match="top_p"):
        mtad_ext.Decoder(m, None, top_p=1.5)
    with pytest.raises(mtad_ext.InputError, match="tau"):
        mtad_ext.Decoder(m, m, method="mtad", tau=0)
    with pytest.raises(mtad_ext.InputError, match="vocabulary"):
        other = mtad_ext.load_model(str(save_tiny("llama_gqa_tied", "float32", _vocab_root(m))))
        mtad_ext.Decoder(m, other, method="sps")
    dec = mtad_ext.Decoder(m, None, capacity=8)
    with pytest.raises(mtad_ext.InputError, match="more than the cache holds"):
        dec.start(list(range(9)))
    with pytest.raises(mtad_ext.InputError, match="no tokens"):
        dec.start([])


def _vocab_root(_model):
    import tempfile
    from pathlib import Path

    import tiny_models

    root = Path(tempfile.mkdtemp())
    old = tiny_models.VOCAB
    tiny_models.VOCAB = VOCAB + 5
    try:
        save_tiny("llama_gqa_tied", "float32", root)
    finally:
        tiny_models.VOCAB = old
    return root








