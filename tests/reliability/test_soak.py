"""Soak: 10,000-token generations with every method on a tiny model. Resident memory stays
flat after warm-up (< 5 % growth), a second run with the same seed gives the same tokens
(compared over its first 2,000, to keep the run short), and a cache that fills is refused
with a clear error, never a crash."""

from __future__ import annotations

import os

import pytest
from tiny_models import VOCAB, save_tiny

import mtad_ext
from mtad_ext import AdedParams, Decoder, InputError

# 10,000 by default; MTAD_SOAK_TOKENS shortens a local run (the figures in the README are
# from the default).
N_TOKENS = int(os.environ.get("MTAD_SOAK_TOKENS", "10000"))
REPEAT = 2_000  # the second run with the same seed is compared over its first tokens
PROMPT = [5, 17, 42, 9]
SAMPLED = dict(temperature=1.0, top_k=10, top_p=0.9)
METHODS = ["ar", "sps", "mtad", "mtad-tree", "aded"]
PAGE = os.sysconf("SC_PAGE_SIZE")


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> tuple[mtad_ext.Model, mtad_ext.Model]:
    root = tmp_path_factory.mktemp("soak")
    return (mtad_ext.load_model(str(save_tiny("llama_gqa_tied", "float32", root))),
            mtad_ext.load_model(str(save_tiny("llama_mha_untied", "float32", root))))


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def make(models: tuple[mtad_ext.Model, mtad_ext.Model], method: str, capacity: int, seed: int = 3) -> Decoder:
    target, draft = models
    dec = Decoder(target, None if method in ("ar", "aded") else draft, method=method, gamma=2, width=2, seed=seed,
                  capacity=capacity, **SAMPLED)  # fmt: skip
    if method == "aded":
        dec.aded_params = AdedParams(simulations=16)
    return dec


def generate(dec: Decoder, n: int, samples: list[int] | None = None) -> list[int]:
    dec.start(PROMPT)
    while len(dec.tokens) < len(PROMPT) + n:
        assert len(dec.step()) >= 1
        if samples is not None and len(dec.tokens) // 250 > len(samples):
            samples.append(rss_bytes())
    return dec.tokens[len(PROMPT):len(PROMPT) + n]


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads resident memory from /proc")
@pytest.mark.parametrize("method", METHODS)
def test_ten_thousand_tokens_flat_memory_and_reproducible(models, method: str) -> None:
    capacity = len(PROMPT) + N_TOKENS + 16
    samples: list[int] = []
    first = generate(make(models, method, capacity), N_TOKENS, samples)
    # Warm-up: the first 10 % (caches, allocator pools, the ADED table's growth).
    warm = samples[len(samples) // 10]
    assert max(samples) <= 1.05 * warm, [s // 2**20 for s in samples]
    second = generate(make(models, method, capacity), min(REPEAT, N_TOKENS))
    assert first[:len(second)] == second
    assert all(0 <= t < VOCAB for t in first)


@pytest.mark.parametrize("method", METHODS)
def test_a_full_cache_is_refused_clearly(models, method: str) -> None:
    """Stepping on past the capacity ends in InputError naming the capacity once the
    committed tokens reach it (a step may overshoot by what it emits: the cache keeps that
    headroom), the caches hold exactly the committed tokens, and the decoder starts again."""
    capacity = 200
    dec = make(models, method, capacity)
    dec.start(PROMPT)
    with pytest.raises(InputError, match=f"reached the cache capacity \\({capacity} tokens\\)"):
        for _ in range(capacity + 1):
            assert len(dec.step()) >= 1
    assert capacity <= len(dec.tokens) < capacity + 8
    assert dec.target_cache.length == len(dec.tokens) - 1
    dec.start(PROMPT)
    assert len(dec.step()) >= 1
