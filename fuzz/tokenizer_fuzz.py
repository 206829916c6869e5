"""atheris target: loading a tokenizer folder (mtad.tokenizer.Tokenizer) from fuzzed files,
then encoding, decoding and applying the chat template. The input holds the files'
contents separated by lines of "----": tokenizer.json, tokenizer_config.json, config.json,
generation_config.json, special_tokens_map.json, chat_template.jinja (absent when the
input has fewer parts; a first part starting with "SPM" is written as tokenizer.model
instead). A bad folder must end in ValueError, FileNotFoundError or jinja2's
TemplateError naming the problem; anything else is a finding.

    python fuzz/tokenizer_fuzz.py -runs=1000000 [corpus folders]   (libFuzzer flags)"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

import atheris
import jinja2
import sentencepiece  # noqa: F401  (imported uninstrumented: only mtad's code is traced)
import tokenizers  # noqa: F401

with atheris.instrument_imports(include=["mtad"]):
    from mtad.tokenizer import Tokenizer

NAMES = ["tokenizer.json", "tokenizer_config.json", "config.json", "generation_config.json",
         "special_tokens_map.json", "chat_template.jinja"]
FOLDER = Path(tempfile.mkdtemp(prefix="mtad_tokenizer_fuzz_"))


def write_folder(data: bytes) -> None:
    for f in FOLDER.iterdir():
        f.unlink()
    for name, part in zip(NAMES, data.split(b"\n----\n"), strict=False):
        if name == "tokenizer.json" and part.startswith(b"SPM"):
            name, part = "tokenizer.model", part[3:]
        (FOLDER / name).write_bytes(part)


def test_one_input(data: bytes) -> None:
    write_folder(data)
    try:
        tok = Tokenizer(FOLDER)
        ids = tok.encode("the of and <s> x1 héllo")
        assert all(isinstance(i, int) and 0 <= i < tok.vocab_size for i in ids), ids
        tok.decode(ids)
        tok.decode(ids, skip_special_tokens=True)
        _ = tok.special_vocab, tok.eos_token_ids, tok.bos_token_id
        if tok.chat_template is not None:
            tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True)
    except (ValueError, FileNotFoundError, jinja2.exceptions.TemplateError):
        pass


if __name__ == "__main__":
    try:
        atheris.Setup(sys.argv, test_one_input)
        atheris.Fuzz()
    finally:
        shutil.rmtree(FOLDER, ignore_errors=True)
