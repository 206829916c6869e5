"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The converted SmolLM2-135M-Instruct folder (fetched once; skip if unobtainable)."""
    from mtad.fetch import fetch_default

    try:
        return fetch_default(progress=False)
    except Exception as e:  # any failure means "not available here", never a test error
        pytest.skip(f"SmolLM2-135M-Instruct is not available: {e}")


# -- driver and command tests: tiny model folders with a tokenizer, the SmolLM2 draft ------

TINY_SPECIALS = ["<unk>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|> {{ m['content'] }} <|end|> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


TINY_WORDS = (
    "the of and to in is it that for on with as was at by be this are from or an have not they but one "
    "all we can her has there been if more when will would who so no time only new some could these two may "
    "first then do any like my now over such our man me even most made after also did many before must "
    "through back years where much your way well down should because each just those people how too little "
    "state good very make world still own see men work long get here between both life being under never day "
    "same another know while last might us great old year off come since against go came right used take three"
).split()


def tiny_words(n: int) -> list[str]:
    """n distinct lower-case words: common English ones, then made-up ones."""
    words = list(dict.fromkeys(TINY_WORDS)) + [f"x{i}" for i in range(n)]
    return words[:n]


def write_tiny_tokenizer(folder: Path, vocab_size: int, specials: list[str] | None = None,
                         eos: str = "</s>") -> None:
    """A word-level tokenizer.json with exactly vocab_size ids (specials first) and a chat
    template, so that a tiny random model folder works with mtad.load()."""
    import json

    from tokenizers import AddedToken
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace

    specials = list(specials or TINY_SPECIALS)
    vocab = {t: i for i, t in enumerate(specials + tiny_words(vocab_size - len(specials)))}
    tok = HFTokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = Whitespace()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tok.save(str(folder / "tokenizer.json"))
    cfg = {"bos_token": "<s>", "eos_token": eos, "unk_token": "<unk>", "chat_template": TINY_CHAT_TEMPLATE}
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg), encoding="utf-8")


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny random Llama folders with one word-level tokenizer: "target" (llama_gqa_tied) and
    "draft" (llama_mha_untied, another random model over the same vocabulary)."""
    from tiny_models import VOCAB, save_tiny

    root = tmp_path_factory.mktemp("tiny_driver")
    out = {"target": save_tiny("llama_gqa_tied", "float32", root),
           "draft": save_tiny("llama_mha_untied", "float32", root)}
    for folder in out.values():
        write_tiny_tokenizer(folder, VOCAB)
    return out


@pytest.fixture(scope="session")
def smollm2_draft_dir(smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weak real draft for SmolLM2: layers 0-11 and 20-29 of the target (tokenizer copied)."""
    from layer_drop import make_layer_dropped

    return make_layer_dropped(smollm2_dir, tmp_path_factory.mktemp("smol_draft") / "smol-drop",
                              keep=list(range(12)) + list(range(20, 30)))
