"""mtad.Tokenizer against transformers' AutoTokenizer (the oracle) on SmolLM2, plus the
sentencepiece path and incremental detokenisation."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from mtad.tokenizer import REPLACEMENT_CHAR, StreamDecoder, Tokenizer

TEXTS = [
    "What is the capital of France?",
    "",
    " ",
    "Hello, world!",
    "   leading and trailing spaces   ",
    "tabs\tand\t\ttabs, newlines\n\n\nand\r\nCRLF",
    "runs of     spaces      and\n    indented\n\t\tcode",
    "naïve café, Straße, résumé, Ångström",
    "日本語のテキストと中文文本，한국어 텍스트",
    "Здравствуй, мир! Γειά σου κόσμε. مرحبا بالعالم",
    "emoji 😀👍🏽🇫🇷👨‍👩‍👧‍👦 and ✓ ✗ → ∑ ∞",
    "math: ∫₀¹ x² dx = ⅓, e^{iπ} + 1 = 0",
    "numbers 1234567890 3.14159 -42 1e-9 0xFF",
    "def fib(n: int) -> int:\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    'json {"key": [1, 2, {"nested": null}], "s": "a\\"b"}',
    "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
    "special tokens inline <|endoftext|> and <repo_name> mid-text",
    "URL https://example.com/path?q=1&r=2#frag and e-mail a.b@c.org",
    "isn't it? we'll see, they're 'quoted' \"double\"",
    "\u200b zero-width, \u00a0 nbsp, \ufeff bom, combining e\u0301",
]


def _stdlib_source() -> str:
    # A long, realistic text: a standard-library module.
    return Path(textwrap.__file__).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def tok(smollm2_dir: Path) -> Tokenizer:
    return Tokenizer(smollm2_dir)


@pytest.fixture(scope="module")
def hf_tok(smollm2_dir: Path) -> Any:
    transformers = pytest.importorskip("transformers")
    return transformers.AutoTokenizer.from_pretrained(str(smollm2_dir))


# -- ids and text --------------------------------------------------------------------


@pytest.mark.smollm2
@pytest.mark.parametrize("add_special_tokens", [True, False])
def test_encode_matches_transformers(tok: Tokenizer, hf_tok: Any, add_special_tokens: bool) -> None:
    for text in [*TEXTS, _stdlib_source()]:
        want = hf_tok.encode(text, add_special_tokens=add_special_tokens)
        assert tok.encode(text, add_special_tokens=add_special_tokens) == want, text[:60]


@pytest.mark.smollm2
@pytest.mark.parametrize("skip_special_tokens", [False, True])
def test_decode_matches_transformers(
    tok: Tokenizer, hf_tok: Any, skip_special_tokens: bool
) -> None:
    import random

    rng = random.Random(0)
    seqs = [hf_tok.encode(t) for t in TEXTS]
    # Arbitrary id runs too: they split multi-byte characters and mix in special tokens.
    seqs += [[rng.randrange(hf_tok.vocab_size) for _ in range(rng.randrange(1, 40))]]
    seqs += [[rng.randrange(64) for _ in range(20)] for _ in range(20)]
    for ids in seqs:
        want = hf_tok.decode(ids, skip_special_tokens=skip_special_tokens)
        assert tok.decode(ids, skip_special_tokens=skip_special_tokens) == want


@pytest.mark.smollm2
def test_round_trip_on_long_text(tok: Tokenizer) -> None:
    text = _stdlib_source()
    ids = tok.encode(text, add_special_tokens=False)
    assert len(ids) > 3000
    assert tok.decode(ids) == text


@pytest.mark.smollm2
def test_special_tokens_match_transformers(tok: Tokenizer, hf_tok: Any) -> None:
    assert tok.bos_token_id == hf_tok.bos_token_id == 1
    assert tok.eos_token_id == hf_tok.eos_token_id == 2
    assert 2 in tok.eos_token_ids
    assert tok.special_tokens == hf_tok.special_tokens_map
    assert tok.vocab_size == len(hf_tok) == 49152
    assert tok.token_to_id("<|im_end|>") == 2
    assert tok.id_to_token(1) == "<|im_start|>"
    assert tok.is_special(0) and not tok.is_special(1000)
    assert tok.pad_token_id == hf_tok.pad_token_id == 2
    assert tok.get_vocab() == hf_tok.get_vocab()
    special = {t.content: i for i, t in hf_tok.added_tokens_decoder.items() if t.special}
    assert len(special) == 17 and tok.special_vocab == special


# -- chat templates ------------------------------------------------------------------

CHATS: list[list[dict[str, Any]]] = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [
        {"role": "system", "content": "You answer in one word."},
        {"role": "user", "content": "Capital of Japan?"},
        {"role": "assistant", "content": "Tokyo"},
        {"role": "user", "content": "And of Peru? 🇵🇪 ¿Lima?"},
    ],
    [{"role": "user", "content": "  spaces\n\nand newlines  "}],
    [{"role": "user", "content": "hi", "name": None}],  # None values are dropped
]


@pytest.mark.smollm2
@pytest.mark.parametrize("add_generation_prompt", [True, False])
@pytest.mark.parametrize("chat", CHATS)
def test_chat_template_matches_transformers(
    tok: Tokenizer, hf_tok: Any, chat: list[dict[str, Any]], add_generation_prompt: bool
) -> None:
    want = hf_tok.apply_chat_template(
        chat, add_generation_prompt=add_generation_prompt, tokenize=False
    )
    got = tok.apply_chat_template(chat, add_generation_prompt=add_generation_prompt)
    assert got == want
    want_ids = hf_tok.apply_chat_template(
        chat, add_generation_prompt=add_generation_prompt, tokenize=True, return_dict=False
    )
    assert tok.encode(got, add_special_tokens=False) == list(want_ids)


# Exercises what transformers' template environment adds: trim/lstrip blocks, tojson with
# non-ASCII, namespace, loop controls, {% generation %}, strftime_now, special tokens.
FEATURE_TEMPLATE = """
{%- set ns = namespace(n=0) -%}
{{ bos_token }}
{% if tools %}Tools: {{ tools | tojson }}
{% endif %}
{% for m in messages %}
    {% if m['role'] == 'skip' %}{% continue %}{% endif %}
    {% set ns.n = ns.n + 1 %}
    [{{ ns.n }}:{{ m['role'] }}]
    {% if m['role'] == 'assistant' %}
{% generation %}{{ m['content'] | trim }}{{ eos_token }}{% endgeneration %}
    {% else %}
{{ m['content'] }}
    {% endif %}
{% endfor %}
{% if add_generation_prompt %}[assistant] year={{ strftime_now('%Y') }}{% endif %}
"""

FEATURE_CHAT = [
    {"role": "user", "content": "héllo «quotes» <tag>"},
    {"role": "skip", "content": "dropped"},
    {"role": "assistant", "content": "  ok  "},
]
TOOLS = [{"type": "function", "function": {"name": "météo", "parameters": {"a": "<&>"}}}]


@pytest.mark.smollm2
def test_template_environment_matches_transformers(tok: Tokenizer, hf_tok: Any) -> None:
    for add in (True, False):
        want = hf_tok.apply_chat_template(
            FEATURE_CHAT,
            chat_template=FEATURE_TEMPLATE,
            tools=TOOLS,
            add_generation_prompt=add,
            tokenize=False,
        )
        got = tok.apply_chat_template(
            FEATURE_CHAT, add_generation_prompt=add, chat_template=FEATURE_TEMPLATE, tools=TOOLS
        )
        assert got == want
        assert "météo" in got and "<&>" in got  # tojson: no ASCII or HTML escaping


@pytest.mark.smollm2
def test_template_raise_exception(tok: Tokenizer) -> None:
    import jinja2

    template = (
        "{% if messages[0]['role'] != 'user' %}{{ raise_exception('user first') }}{% endif %}"
    )
    with pytest.raises(jinja2.TemplateError, match="user first"):
        tok.apply_chat_template([{"role": "assistant", "content": "x"}], chat_template=template)


def test_template_sandbox_blocks_attribute_escape(tmp_path: Path) -> None:
    import jinja2

    folder = _sentencepiece_folder(tmp_path, chat_template="{{ messages[0]['content'] }}")
    assert Tokenizer(folder).apply_chat_template([{"role": "user", "content": "x"}]) == "x"
    with pytest.raises(jinja2.exceptions.SecurityError):
        Tokenizer(folder).apply_chat_template(
            [{"role": "user", "content": "x"}],
            chat_template="{{ ''.__class__.__mro__[1].__subclasses__() }}",
        )


# -- streaming -----------------------------------------------------------------------


def _stream(tok: Tokenizer, ids: list[int], **kwargs: Any) -> list[str]:
    dec = StreamDecoder(tok, **kwargs)
    pieces = [dec.push(i) for i in ids]
    return [*pieces, dec.flush()]


@pytest.mark.smollm2
def test_stream_pieces_join_to_full_decode(tok: Tokenizer) -> None:
    for text in [*TEXTS, _stdlib_source()[:4000]]:
        ids = tok.encode(text)
        pieces = _stream(tok, ids)
        assert "".join(pieces) == tok.decode(ids), text[:60]
        assert not any(REPLACEMENT_CHAR in p for p in pieces), text[:60]


@pytest.mark.smollm2
def test_stream_holds_back_split_emoji(tok: Tokenizer) -> None:
    text = "a😀b👍🏽🇫🇷"
    ids = tok.encode(text)
    # Byte-level BPE splits each of these characters over several tokens.
    assert len(ids) > len(text)
    pieces = _stream(tok, ids)
    assert "".join(pieces) == text
    assert pieces.count("") >= 4  # tokens that only carried part of a character
    assert all(REPLACEMENT_CHAR not in p for p in pieces)
    assert "😀" in pieces


@pytest.mark.smollm2
def test_stream_flush_releases_incomplete_bytes(tok: Tokenizer) -> None:
    ids = tok.encode("😀")
    dec = StreamDecoder(tok)
    assert [dec.push(i) for i in ids[:-1]] == [""] * (len(ids) - 1)
    assert dec.flush() == tok.decode(ids[:-1])  # gives up: the partial bytes as U+FFFD
    assert REPLACEMENT_CHAR in tok.decode(ids[:-1])


@pytest.mark.smollm2
def test_stream_skips_special_tokens_after_context(tok: Tokenizer) -> None:
    prompt = tok.encode(tok.apply_chat_template([{"role": "user", "content": "hi"}]))
    answer = tok.encode("Hello there 🙂!<|im_end|>")
    pieces = _stream(tok, answer, skip_special_tokens=True, context=prompt[-4:])
    assert "".join(pieces) == "Hello there 🙂!"


# -- sentencepiece folders -----------------------------------------------------------


def _sentencepiece_folder(tmp_path: Path, chat_template: str | None = None) -> Path:
    spm = pytest.importorskip("sentencepiece")
    corpus = [
        "The quick brown fox jumps over the lazy dog.",
        "Hello world, hello there! How are you today?",
        "def f(x): return x * 2  # naïve café résumé",
    ] * 40
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus),
        model_writer=buf,
        vocab_size=360,
        model_type="bpe",
        byte_fallback=True,  # like Llama: unseen characters become byte tokens
        character_coverage=1.0,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
    )
    folder = tmp_path / "sp"
    folder.mkdir()
    (folder / "tokenizer.model").write_bytes(buf.getvalue())
    cfg: dict[str, Any] = {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    if chat_template is not None:
        cfg["chat_template"] = chat_template
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg), encoding="utf-8")
    (folder / "generation_config.json").write_text('{"eos_token_id": [2, 5]}', encoding="utf-8")
    return folder


def test_sentencepiece_folder(tmp_path: Path) -> None:
    import sentencepiece as spm_mod

    folder = _sentencepiece_folder(tmp_path)
    tok = Tokenizer(folder)
    sp = spm_mod.SentencePieceProcessor(model_file=str(folder / "tokenizer.model"))
    text = "Hello fox 😀 über"
    assert tok.bos_token_id == 1 and tok.eos_token_id == 2
    assert tok.eos_token_ids == {2, 5}
    assert tok.encode(text) == [1, *sp.EncodeAsIds(text)]  # add_bos_token defaults on
    assert tok.encode(text, add_special_tokens=False) == sp.EncodeAsIds(text)
    ids = tok.encode(text)
    assert tok.decode(ids, skip_special_tokens=True) == text
    assert tok.chat_template is None
    with pytest.raises(ValueError, match="no chat template"):
        tok.apply_chat_template([{"role": "user", "content": "x"}])


def test_sentencepiece_stream_keeps_spaces_and_bytes(tmp_path: Path) -> None:
    tok = Tokenizer(_sentencepiece_folder(tmp_path))
    text = "The fox says 😀 and über hello"
    ids = tok.encode(text, add_special_tokens=False)
    pieces = _stream(tok, ids)
    # Token-by-token decoding would drop every word's leading space ("▁fox" -> "fox").
    assert "".join(pieces) == tok.decode(ids) == text
    assert all(REPLACEMENT_CHAR not in p for p in pieces)
    # With the prompt as context the first new token keeps its leading space.
    prompt = tok.encode("The fox", add_special_tokens=True)
    cont = tok.encode("The fox says hi", add_special_tokens=True)[len(prompt) :]
    assert "".join(_stream(tok, cont, context=prompt)) == " says hi"


def test_missing_folder_and_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        Tokenizer(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="tokenizer.json"):
        Tokenizer(tmp_path)


def test_a_too_deeply_nested_chat_template_is_a_template_error() -> None:
    """jinja2's parser recurses per nesting level: a template nested past Python's recursion
    limit is refused by name, not with a RecursionError (a fuzz finding)."""
    import jinja2
    from mtad.tokenizer import _compile_template

    with pytest.raises(jinja2.exceptions.TemplateError, match="nests too deeply"):
        _compile_template("{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}")
