"""End to end: the first two tokens that AR, SpS and ADED sampling emit through the Decoder
follow the target's exact joint distribution, on a model of 8 tokens whose draft disagrees
often, with stated power (dist_stats.py). This checks what the op tests cannot: which rows,
draft distributions and RNG counters the decoder feeds to acceptance. Biased
re-implementations of speculative sampling prove the same test rejects them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from dist_stats import assert_powerful, chi_square_fit, tv_distance

import mtad_ext
from mtad_ext import AdedParams, Decoder, TrigramTable

VOCAB = 8
PROMPT = [3, 1, 6]
SAMPLING = dict(temperature=1.0, top_k=0, top_p=1.0)
TRIALS = 230_000


def save_model(folder: Path, seed: int, scale: float) -> Path:
    """A one-layer Llama over 8 tokens; weights large enough that some next-token rows are
    peaked and others flat."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                      tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(1.0 + 0.2 * torch.randn_like(p) if "norm" in name else scale * torch.randn_like(p))
    model.save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[mtad_ext.Model, mtad_ext.Model]:
    root = tmp_path_factory.mktemp("dist_decoder")
    target = mtad_ext.load_model(str(save_model(root / "target", 3, 0.25)))
    draft = mtad_ext.load_model(str(save_model(root / "draft", 4, 0.25)))
    return target, draft


def rows(model: mtad_ext.Model, temperature: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The normalised next-token distributions after the prompt [V] and after prompt + x
    for every x [V, V] (float64)."""
    second = []
    for x in range(VOCAB):
        logits = model.forward(model.new_cache(8), torch.tensor([*PROMPT, x]))
        lp = mtad_ext.ops.normalize(logits[-2:], temperature, 0, 1.0).double().exp().numpy()
        first = lp[0]
        second.append(lp[1])
    return first, np.stack(second)


def joint(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    return first[:, None] * second


def trigram_table() -> TrigramTable:
    """Tri-grams of random sequences: ADED's drafts, unrelated to the target, disagree often."""
    g = torch.Generator().manual_seed(0)
    seqs = [torch.randint(0, VOCAB, (40,), generator=g).tolist() for _ in range(20)]
    return TrigramTable.build(seqs, VOCAB)


def decoder_counts(target: mtad_ext.Model, draft: mtad_ext.Model, method: str, n: int) -> np.ndarray:
    """Counts of (token 1, token 2) over n decoders seeded 0..n-1, in two threads (a step
    releases the GIL; the models and the table are safe to share)."""
    table = trigram_table()
    params = AdedParams(adapt=False, simulations=8, max_nodes=16)

    def run(seeds: range) -> np.ndarray:
        counts = np.zeros((VOCAB, VOCAB), dtype=np.int64)
        for seed in seeds:
            dec = Decoder(target, draft if method == "sps" else None, method=method, gamma=2, seed=seed,
                          capacity=24, **SAMPLING)  # fmt: skip
            if method == "aded":
                dec.set_trigram_table(table)
                dec.aded_params = params
            dec.start(PROMPT)
            while len(dec.tokens) < len(PROMPT) + 2:
                dec.step()
            counts[dec.tokens[len(PROMPT)], dec.tokens[len(PROMPT) + 1]] += 1
        return counts

    with ThreadPoolExecutor(2) as pool:
        return sum(pool.map(run, [range(0, n, 2), range(1, n, 2)]))


def simulate_sps(p: tuple[np.ndarray, np.ndarray], q: tuple[np.ndarray, np.ndarray], n: int, seed: int,
                 residual_from_p: bool = False) -> np.ndarray:
    """Speculative sampling's first two tokens, vectorised: at each position draw x from the
    draft row, keep it with probability min(1, p(x)/q(x)), else draw from norm(max(p - q, 0))
    (or, biased, from p). Position 2 uses the rows after token 1 whether token 1 was an
    accepted draft or a resample (the next step drafts from there)."""
    rng = np.random.default_rng(seed)

    def position(prow: np.ndarray, qrow: np.ndarray) -> np.ndarray:
        x = (qrow.cumsum(1) <= rng.random((len(qrow), 1))).sum(1).clip(max=VOCAB - 1)
        px, qx = prow[np.arange(len(x)), x], qrow[np.arange(len(x)), x]
        keep = rng.random(len(x)) * qx < px
        res = prow if residual_from_p else np.maximum(prow - qrow, 0.0)
        res = res / res.sum(1, keepdims=True).clip(min=1e-300)
        y = (res.cumsum(1) <= rng.random((len(x), 1)) * res.sum(1, keepdims=True)).sum(1).clip(max=VOCAB - 1)
        return np.where(keep, x, y)

    t1 = position(np.broadcast_to(p[0], (n, VOCAB)), np.broadcast_to(q[0], (n, VOCAB)))
    t2 = position(p[1][t1], q[1][t1])
    counts = np.zeros((VOCAB, VOCAB), dtype=np.int64)
    np.add.at(counts, (t1, t2), 1)
    return counts


def test_the_fixture_model_has_peaked_and_flat_rows_and_a_disagreeing_draft(models) -> None:
    target, draft = models
    p, q = rows(target), rows(draft)
    tops = np.concatenate([p[0][None], p[1]]).max(1)
    assert tops.max() > 0.5 and tops.min() < 0.3, tops
    # Rejections are common: the draft's rows are far from the target's.
    assert tv_distance(p[0], q[0]) > 0.2
    assert np.mean([tv_distance(p[1][x], q[1][x]) for x in range(VOCAB)]) > 0.2


@pytest.mark.parametrize("method", ["ar", "sps", "aded"])
def test_first_two_tokens_follow_the_target(models, method: str) -> None:
    """Cells: the pair (token 1, token 2), 64 of them (63 degrees of freedom, fewer if rare
    pairs are pooled). Power (dist_stats): at ALPHA = 1e-3 the critical value is
    chi2.isf(1e-3, 63) = 103.4; a decoder off by 1 % in total variation has noncentrality
    >= 4 * 230,000 * 0.01^2 = 92 (less what pooling under 0.1 % of the mass can hide), so it
    is caught with probability ncx2.sf(103.4, 63, 92) = 0.993 >= 0.99 (assert_powerful
    recomputes it for the cells actually used). SpS drafts 2 tokens per step, so both
    accepted drafts, resamples at either position and a second step all occur; ADED draws
    its trie from a table of random tri-grams."""
    target, draft = models
    exact = joint(*rows(target))
    counts = decoder_counts(target, draft, method, TRIALS)
    fit = chi_square_fit(counts, exact)
    assert_powerful(fit, TRIALS)
    assert not fit.rejects, (fit, counts)


@pytest.mark.parametrize("bias", ["correct", "temperature_5pc", "residual_from_p"])
def test_simulated_sps_proves_the_test(models, bias: str) -> None:
    """The same test (cells, trial count) passes a correct re-implementation of speculative
    sampling on the same rows and rejects a target temperature 5 % off and a residual taken
    from p instead of max(p - q, 0); both biases are over 1 % in total variation (the
    temperature's exactly; the residual's measured on 10^6 simulated draws)."""
    target, draft = models
    exact = joint(*rows(target))
    p = rows(target, 1.05) if bias == "temperature_5pc" else rows(target)
    counts = simulate_sps(p, rows(draft), TRIALS, seed=1, residual_from_p=bias == "residual_from_p")
    assert chi_square_fit(counts, exact).rejects == (bias != "correct")
    if bias == "temperature_5pc":
        assert tv_distance(joint(*p), exact) > 0.01
    if bias == "residual_from_p":
        big = simulate_sps(p, rows(draft), 1_000_000, seed=2, residual_from_p=True)
        assert tv_distance(big / big.sum(), exact) > 0.01
