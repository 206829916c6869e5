"""The sentencepiece path of mtad.Tokenizer on the real Llama-2 vocabulary.

No hub here: the llama-cpp-python sdist carries ggml-vocab-llama-spm.gguf with llama.cpp's
tokenizer test vectors; mtad.spm_from_gguf rebuilds Meta's tokenizer.model from it
(byte-identical: the md5 is checked) and the Tokenizer must reproduce the vectors."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import pytest
from mtad.fetch import FetchError
from mtad.spm_from_gguf import (
    LLAMA2_TOKENIZER_MD5,
    build_model_proto,
    fetch_llama_spm_vocab,
    read_gguf_vocab,
    read_test_vectors,
    write_tokenizer_folder,
)
from mtad.tokenizer import REPLACEMENT_CHAR, StreamDecoder, Tokenizer


@pytest.fixture(scope="module")
def vocab_gguf() -> Path:
    try:
        return fetch_llama_spm_vocab()
    except FetchError as e:
        pytest.skip(f"the llama-cpp-python sdist (Llama-2 vocabulary and test vectors) is not available: {e}")


@pytest.fixture(scope="module")
def llama2_dir(vocab_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("llama2_tokenizer")
    write_tokenizer_folder(vocab_gguf, folder)
    return folder


def test_rebuilt_tokenizer_model_is_byte_identical_to_meta(llama2_dir: Path) -> None:
    data = (llama2_dir / "tokenizer.model").read_bytes()
    assert len(data) == 499723
    assert hashlib.md5(data).hexdigest() == LLAMA2_TOKENIZER_MD5


def test_special_tokens_and_settings(llama2_dir: Path) -> None:
    tok = Tokenizer(llama2_dir)
    assert repr(tok).endswith("sentencepiece, vocab=32000)")
    assert (tok.bos_token_id, tok.eos_token_id) == (1, 2)
    assert tok.special_tokens == {"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
    assert tok.special_vocab == {"<unk>": 0, "<s>": 1, "</s>": 2}
    assert tok.encode("Hello world") == [1, 15043, 3186]  # BOS, then the add_dummy_prefix pieces
    # Byte fallback: a character outside the vocabulary becomes its UTF-8 bytes.
    assert [tok.id_to_token(i) for i in tok.encode("😀", add_special_tokens=False)] == [
        "▁", "<0xF0>", "<0x9F>", "<0x98>", "<0x80>",
    ]  # fmt: skip


def test_llama_cpp_test_vectors(vocab_gguf: Path, llama2_dir: Path) -> None:
    tok = Tokenizer(llama2_dir)
    vectors = read_test_vectors(vocab_gguf)
    assert len(vectors) >= 40
    assert {"", " ", "\n\n", "\t\n", "   Hello"} <= {text for text, _ in vectors}  # whitespace kept exactly
    mismatches = [(text, ids, tok.encode(text, add_special_tokens=False)) for text, ids in vectors]
    mismatches = [m for m in mismatches if m[1] != m[2]]
    assert not mismatches, mismatches[:3]
    for text, ids in vectors:
        assert tok.encode(text) == [1, *ids]
        assert tok.decode(ids) == text


def test_streaming_the_test_vectors(vocab_gguf: Path, llama2_dir: Path) -> None:
    tok = Tokenizer(llama2_dir)
    for text, ids in read_test_vectors(vocab_gguf):
        dec = StreamDecoder(tok)
        pieces = [dec.push(i) for i in ids] + [dec.flush()]
        assert "".join(pieces) == tok.decode(ids) == text
        assert not any(REPLACEMENT_CHAR in p for p in pieces)


def test_vocab_read_from_gguf(vocab_gguf: Path) -> None:
    vocab = read_gguf_vocab(vocab_gguf)
    assert len(vocab.pieces) == len(vocab.scores) == len(vocab.types) == 32000
    assert vocab.pieces[:3] == ["<unk>", "<s>", "</s>"] and vocab.types[:4] == [2, 3, 3, 6]
    assert (vocab.bos_id, vocab.eos_id, vocab.unk_id, vocab.pad_id) == (1, 2, 0, None)
    # Another trainer spec gives another (valid) file: the specs are what makes it Meta's.
    assert hashlib.md5(build_model_proto(vocab, trainer_spec=())).hexdigest() != LLAMA2_TOKENIZER_MD5


def test_byte_level_gguf_is_refused(tmp_path: Path) -> None:
    def string(s: str) -> bytes:
        return struct.pack("<Q", len(s.encode())) + s.encode()

    path = tmp_path / "bpe.gguf"
    path.write_bytes(
        b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + string("tokenizer.ggml.model") + struct.pack("<I", 8) + string("gpt2")
    )
    with pytest.raises(ValueError, match="holds a 'gpt2' tokenizer, not a sentencepiece"):
        read_gguf_vocab(path)
