"""A word-level tokenizer for the tiny random model folders (tests/tiny_models.py), so that
they work with mtad.load() like a real model folder."""

from __future__ import annotations

from pathlib import Path

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
