"""End to end: AR, SpS, MTAD and multi-candidate MTAD on real and random models."""

from __future__ import annotations

import pytest
import torch
from layer_drop import make_layer_dropped
from tiny_models import VOCAB, save_tiny

import mtad_ext

METHODS = ["sps", "mtad", "mtad-tree"]
SAMPLED = dict(temperature=1.0, top_k=10, top_p=0.9)
GREEDY = dict(temperature=0.0, top_k=0, top_p=1.0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_methods")
    return {n: mtad_ext.load_model(str(save_tiny(n, "float32", root))) for n in ("llama_gqa_tied", "opt_pre_ln")}


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


@pytest.mark.parametrize("arch", ["llama_gqa_tied", "opt_pre_ln"])
def test_greedy_sps_equals_greedy_ar(tiny, arch):
    target = tiny[arch]
    draft = tiny["opt_pre_ln" if arch == "llama_gqa_tied" else "llama_gqa_tied"]
    prompt = [11, 22, 33]
    ar = run(mtad_ext.Decoder(target, None, method="ar", capacity=128, **GREEDY), prompt, 30)
    sps = run(mtad_ext.Decoder(target, draft, method="sps", gamma=4, capacity=128, **GREEDY), prompt, 30)
    assert sps[:30] == ar[:30]


def test_ar_greedy_is_argmax_of_forward(tiny):
    model = tiny["llama_gqa_tied"]
    prompt = [7, 8, 9]
    out = run(mtad_ext.Decoder(model, method="ar", capacity=64, **GREEDY), prompt, 10)
    seq = list(prompt)
    for tok in out[:10]:
        logits = model.forward(model.new_cache(64), torch.tensor(seq))[-1]
        assert tok == int(logits.argmax())
        seq.append(tok)


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


@pytest.fixture(scope="module")
def smol(smollm2_dir, tmp_path_factory):
    draft_dir = make_layer_dropped(smollm2_dir, tmp_path_factory.mktemp("drop") / "smol-drop",
                                   keep=list(range(12)) + list(range(20, 30)))
    return mtad_ext.load_model(str(smollm2_dir)), mtad_ext.load_model(str(draft_dir))


SMOL_PROMPT = [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3717, 3057, 2, 198, 1, 4093, 198]


@pytest.mark.smollm2
def test_smollm2_greedy_sps_equals_ar(smol):
    target, draft = smol
    ar = run(mtad_ext.Decoder(target, method="ar", capacity=256, **GREEDY), SMOL_PROMPT, 32)
    dec = mtad_ext.Decoder(target, draft, method="sps", gamma=4, capacity=256, **GREEDY)
    sps = run(dec, SMOL_PROMPT, 32)
    assert sps[:32] == ar[:32]
    assert dec.total_stats["accepted"] > 0


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
