"""Inputs the fuzzers (fuzz/) found mishandled, kept as regression tests: each must now be
refused with a named error that says what is wrong."""

from __future__ import annotations

import os

import pytest
from tiny_models import save_tiny

import mtad_ext
from mtad_ext import Decoder, InputError


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> mtad_ext.Model:
    return mtad_ext.load_model(str(save_tiny("llama_gqa_tied", "float32", tmp_path_factory.mktemp("fuzz_reg"))))


@pytest.mark.parametrize("capacity", [7591762044795968348, 2**63 - 1, 2**50])
def test_huge_capacity_is_refused_by_name(model: mtad_ext.Model, capacity: int) -> None:
    """decoder_fuzz: the cache size overflowed inside torch ("Storage size calculation
    overflowed"), or capacity + headroom overflowed int64 (undefined behaviour)."""
    named = r"capacity \d+ is too large|cannot allocate a cache of \d+ tokens|a cache of \d+ tokens needs"
    with pytest.raises(InputError, match=named):
        Decoder(model, None, method="ar", capacity=capacity)
    with pytest.raises(InputError, match=named):
        model.new_cache(capacity)


def test_cache_beyond_memory_is_refused_by_name(model: mtad_ext.Model) -> None:
    """decoder_fuzz: capacity 28,159,405 on the tiny model zeroed a 14 GB cache (its pages
    all touched); a cache larger than the machine's memory would meet the OOM killer, not an
    error. One past the memory is refused, naming both sizes."""
    ram = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGESIZE")
    per_token = model.new_cache(1).k.element_size() * 2 * model.new_cache(1).k[:, 0].numel()
    capacity = ram // per_token + 1
    beyond = r"a cache of \d+ tokens needs [\d.]+ GiB, more than this machine's memory \([\d.]+ GiB\)"
    with pytest.raises(InputError, match=beyond):
        Decoder(model, None, method="ar", capacity=capacity)  # the step's headroom comes on top
    with pytest.raises(InputError, match=beyond.replace(r"\d+ tokens", f"{capacity} tokens")):
        model.new_cache(capacity)


@pytest.mark.parametrize(("method", "gamma", "width"), [("sps", 2**63 - 1, 4), ("mtad", 2**40, 2**40),
                                                         ("mtad-tree", 4, 2**62)])
def test_huge_gamma_or_width_is_refused_by_name(model: mtad_ext.Model, method: str, gamma: int, width: int) -> None:
    """width * gamma + 1 overflowed int64 before the cache was sized."""
    with pytest.raises(InputError, match="gamma and width"):
        Decoder(model, model, method=method, gamma=gamma, width=width, capacity=16)


def test_a_reasonable_cache_still_works(model: mtad_ext.Model) -> None:
    dec = Decoder(model, model, method="sps", gamma=3, capacity=16, temperature=0.0)
    dec.start([1, 2, 3])
    assert len(dec.step()) >= 1
    assert model.new_cache(4).capacity == 4


def test_tokenizer_without_unk_token_fails_by_name(tmp_path) -> None:
    """tokenizer_fuzz: a word-level tokenizer.json with no unk token loaded, then encoding an
    unknown word raised the Rust side's plain Exception; now ValueError naming the file."""
    import json

    from mtad.tokenizer import Tokenizer
    from tiny_tokenizer import write_tiny_tokenizer

    write_tiny_tokenizer(tmp_path, 24)
    spec = json.loads((tmp_path / "tokenizer.json").read_text())
    spec["model"]["unk_token"] = "[UNK]"  # not in the vocabulary
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec))
    tok = Tokenizer(tmp_path)
    assert tok.encode("the of") == tok.encode("the of")
    with pytest.raises(ValueError, match="tokenizer.json cannot encode"):
        tok.encode("zzz-not-a-word")


def test_chat_template_that_fails_at_render_fails_by_name(tmp_path) -> None:
    """tokenizer_fuzz: a chat template whose code raised at render time (here `-messages`)
    escaped as that TypeError; now ValueError naming the folder and the template's error."""
    from mtad.tokenizer import Tokenizer
    from tiny_tokenizer import write_tiny_tokenizer

    write_tiny_tokenizer(tmp_path, 24)
    (tmp_path / "chat_template.jinja").write_text("{{ -messages }}")
    with pytest.raises(ValueError, match=r"chat template of .* failed: TypeError"):
        Tokenizer(tmp_path).apply_chat_template([{"role": "user", "content": "hi"}])


@pytest.mark.parametrize("temperature", [5.14634e307, float("inf"), 1e39])
def test_temperature_beyond_float_is_refused_at_construction(model: mtad_ext.Model, temperature: float) -> None:
    """decoder_fuzz: the Decoder accepted a temperature that overflows float32, then every
    step failed inside normalize with a RuntimeError; now InputError when it is made."""
    with pytest.raises(InputError, match="temperature must be >= 0 and finite"):
        Decoder(model, None, method="ar", temperature=temperature, capacity=16)
    with pytest.raises(InputError, match="draft temperature"):
        Decoder(model, model, method="sps", draft_temperature=temperature, capacity=16)


def test_tokenizer_vocab_size_covers_sparse_ids(tmp_path) -> None:
    """tokenizer_fuzz: a tokenizer.json whose vocabulary numbers its tokens with gaps
    ({"[UNK]": 0, "of": 3, "the": 7}) encoded "the" as 7 while vocab_size said 4 (the
    tokenizers library counts tokens); vocab_size is now one past the largest id."""
    import json

    from mtad.tokenizer import Tokenizer

    spec = {"version": "1.0", "pre_tokenizer": {"type": "Whitespace"},
            "model": {"type": "WordLevel", "vocab": {"[UNK]": 0, "of": 3, "the": 7}, "unk_token": "[UNK]"}}
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec))
    tok = Tokenizer(tmp_path)
    ids = tok.encode("the of zzz")
    assert ids == [7, 3, 0]
    assert tok.vocab_size == 8 and all(0 <= i < tok.vocab_size for i in ids)
