"""Rebuild a sentencepiece `tokenizer.model` from the vocabulary stored in a GGUF file.

No model hub is reachable here, but the `llama-cpp-python` sdist on PyPI carries
`ggml-vocab-llama-spm.gguf`: the Llama-1/2 sentencepiece vocabulary (pieces, scores,
types) with llama.cpp's tokenizer test vectors beside it. A GGUF keeps the vocabulary but
not sentencepiece's trainer and normaliser settings, which decide how text is split;
`LLAMA2_TRAINER_SPEC` / `LLAMA2_NORMALIZER_SPEC` are those of Meta's Llama-2 model, and
with them the rebuilt file is byte-identical to the official `tokenizer.model`
(md5 eeec4125e9c7560836b4873b6f8e3025).

The protobuf is written by hand (proto2 wire format, fields in number order as the C++
serialiser writes them), so neither `protobuf` nor `sentencepiece_model_pb2` is needed.

    python -m mtad.spm_from_gguf [OUT_DIR]      # fetch the sdist, write a Llama-2 tokenizer folder
"""

from __future__ import annotations

import hashlib
import json
import struct
import subprocess
import sys
import tarfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .fetch import FetchError, _exclusive, _log, default_cache_dir
from .gguf_meta import read_metadata

LLAMA_CPP_PACKAGE = "llama-cpp-python"
LLAMA_CPP_VERSION = "0.3.36"
LLAMA_CPP_SDIST = f"llama_cpp_python-{LLAMA_CPP_VERSION}.tar.gz"
LLAMA_SPM_MEMBER = f"llama_cpp_python-{LLAMA_CPP_VERSION}/vendor/llama.cpp/models/ggml-vocab-llama-spm.gguf"
# md5 of Meta's Llama-2 tokenizer.model, which the rebuild must reproduce byte for byte.
LLAMA2_TOKENIZER_MD5 = "eeec4125e9c7560836b4873b6f8e3025"
TEST_SEPARATOR = "\n__ggml_vocab_test__\n"

# ---------------------------------------------------------------------------------------
# Protobuf wire format (only what sentencepiece's ModelProto needs)

_VARINT, _I32, _LEN = 0, 5, 2


def _varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # negative int32/int64 are sign-extended to 10 bytes
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _key(field: int, wire: int) -> bytes:
    return _varint(field << 3 | wire)


def _field(field: int, kind: str, value: Any) -> bytes:
    if kind in ("int", "enum"):
        return _key(field, _VARINT) + _varint(int(value))
    if kind == "bool":
        return _key(field, _VARINT) + (b"\x01" if value else b"\x00")
    if kind == "float":
        return _key(field, _I32) + struct.pack("<f", value)
    if kind == "string":
        data = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        return _key(field, _LEN) + _varint(len(data)) + data
    if kind == "message":
        return _key(field, _LEN) + _varint(len(value)) + value
    raise ValueError(f"unknown protobuf field kind {kind}")


def _message(fields: Iterable[tuple[int, str, Any]]) -> bytes:
    # The C++ serialiser (which wrote the official files) emits set fields by number.
    return b"".join(_field(num, kind, val) for num, kind, val in sorted(fields, key=lambda f: f[0]))


# ---------------------------------------------------------------------------------------
# The specs of Meta's Llama-2 tokenizer.model: (field number, kind, value), every field
# that file sets (proto2 keeps "set to the default" apart from "unset", so an explicit
# default is still written).

LLAMA2_TRAINER_SPEC: tuple[tuple[int, str, Any], ...] = (
    (1, "string", "/large_experiments/theorem/datasets/MERGED/all.test1.merged"),  # input
    (2, "string", "spm_model_32k_200M_charcov099995_allowWSO__v2"),  # model_prefix
    (3, "enum", 2),  # model_type: BPE
    (4, "int", 32000),  # vocab_size
    (6, "int", 0),  # self_test_sample_size
    (7, "string", "text"),  # input_format
    (10, "float", 0.99995),  # character_coverage
    (11, "int", 200000000),  # input_sentence_size
    (14, "int", 1000000),  # seed_sentencepiece_size
    (15, "float", 0.75),  # shrinking_factor
    (16, "int", 80),  # num_threads
    (17, "int", 2),  # num_sub_iterations
    (18, "int", 4192),  # max_sentence_length
    (19, "bool", True),  # shuffle_input_sentence
    (20, "int", 16),  # max_sentencepiece_length
    (21, "bool", True),  # split_by_unicode_script
    (22, "bool", True),  # split_by_whitespace
    (23, "bool", True),  # split_by_number
    (24, "bool", False),  # treat_whitespace_as_suffix
    (25, "bool", True),  # split_digits
    (26, "bool", True),  # allow_whitespace_only_pieces
    (32, "bool", True),  # vocabulary_output_piece_score
    (33, "bool", True),  # hard_vocab_limit
    (34, "bool", False),  # use_all_vocab
    (35, "bool", True),  # byte_fallback
    (36, "string", ""),  # required_chars
    (40, "int", 0),  # unk_id
    (41, "int", 1),  # bos_id
    (42, "int", 2),  # eos_id
    (43, "int", -1),  # pad_id
    (44, "string", " \u2047 "),  # unk_surface
    (45, "string", "<unk>"),  # unk_piece
    (46, "string", "<s>"),  # bos_piece
    (47, "string", "</s>"),  # eos_piece
    (48, "string", "<pad>"),  # pad_piece
    (49, "bool", False),  # train_extremely_large_corpus
    (50, "bool", False),  # enable_differential_privacy
    (51, "float", 0.0),  # differential_privacy_noise_level
    (52, "int", 0),  # differential_privacy_clipping_threshold
)

LLAMA2_NORMALIZER_SPEC: tuple[tuple[int, str, Any], ...] = (
    (1, "string", "identity"),  # name
    (2, "string", b""),  # precompiled_charsmap
    (3, "bool", True),  # add_dummy_prefix
    (4, "bool", False),  # remove_extra_whitespaces
    (6, "string", ""),  # normalization_rule_tsv
)

# sentencepiece's ModelProto.SentencePiece.Type; GGUF's token_type uses the same numbers.
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


@dataclass
class SpmVocab:
    """A sentencepiece vocabulary as a GGUF file stores it."""

    pieces: list[str]
    scores: list[float]
    types: list[int]
    bos_id: int | None = None
    eos_id: int | None = None
    unk_id: int | None = None
    pad_id: int | None = None
    add_bos: bool = True
    add_eos: bool = False


def read_gguf_vocab(gguf: str | Path) -> SpmVocab:
    """The sentencepiece vocabulary of a GGUF file (tokenizer.ggml.model == "llama")."""
    meta = read_metadata(gguf)
    model = meta.get("tokenizer.ggml.model")
    if model != "llama":
        raise ValueError(
            f"{gguf} holds a {model!r} tokenizer, not a sentencepiece ('llama') one; "
            "only sentencepiece vocabularies can become a tokenizer.model"
        )
    pieces = meta.get("tokenizer.ggml.tokens")
    if not isinstance(pieces, list) or not pieces:
        raise ValueError(f"{gguf} has no tokenizer.ggml.tokens")
    n = len(pieces)
    scores = meta.get("tokenizer.ggml.scores") or [0.0] * n
    types = meta.get("tokenizer.ggml.token_type") or [NORMAL] * n
    if len(scores) != n or len(types) != n:
        raise ValueError(f"{gguf}: {n} tokens but {len(scores)} scores and {len(types)} types")

    def opt_id(key: str) -> int | None:
        v = meta.get(key)
        return int(v) if isinstance(v, int) and 0 <= v < n else None

    return SpmVocab(
        pieces=[str(p) for p in pieces],
        scores=[float(s) for s in scores],
        types=[int(t) for t in types],
        bos_id=opt_id("tokenizer.ggml.bos_token_id"),
        eos_id=opt_id("tokenizer.ggml.eos_token_id"),
        unk_id=opt_id("tokenizer.ggml.unknown_token_id"),
        pad_id=opt_id("tokenizer.ggml.padding_token_id"),
        add_bos=bool(meta.get("tokenizer.ggml.add_bos_token", True)),
        add_eos=bool(meta.get("tokenizer.ggml.add_eos_token", False)),
    )


def build_model_proto(
    vocab: SpmVocab,
    trainer_spec: Sequence[tuple[int, str, Any]] = LLAMA2_TRAINER_SPEC,
    normalizer_spec: Sequence[tuple[int, str, Any]] = LLAMA2_NORMALIZER_SPEC,
) -> bytes:
    """Serialise a sentencepiece ModelProto: the pieces, then the two specs.

    A piece's type is written only when it is not NORMAL (the trainer leaves NORMAL
    unset); its score is always written.
    """
    out = bytearray()
    for piece, score, ptype in zip(vocab.pieces, vocab.scores, vocab.types, strict=True):
        if ptype not in (NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE):
            raise ValueError(f"piece {piece!r} has unknown token type {ptype}")
        fields = [(1, "string", piece), (2, "float", score)]
        if ptype != NORMAL:
            fields.append((3, "enum", ptype))
        out += _field(1, "message", _message(fields))
    out += _field(2, "message", _message(trainer_spec))
    out += _field(3, "message", _message(normalizer_spec))
    return bytes(out)


def write_tokenizer_folder(gguf: str | Path, out_dir: str | Path) -> Path:
    """Write tokenizer.model (Llama-2 specs) and tokenizer_config.json for a GGUF vocabulary.

    Returns the tokenizer.model path. The folder then loads with `mtad.Tokenizer`.
    """
    vocab = read_gguf_vocab(gguf)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_path = out / "tokenizer.model"
    model_path.write_bytes(build_model_proto(vocab))
    cfg: dict[str, Any] = {"add_bos_token": vocab.add_bos, "add_eos_token": vocab.add_eos}
    for name, tid in (("bos_token", vocab.bos_id), ("eos_token", vocab.eos_id), ("unk_token", vocab.unk_id),
                      ("pad_token", vocab.pad_id)):  # fmt: skip
        if tid is not None:
            cfg[name] = vocab.pieces[tid]
    (out / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2) + "\n", encoding="utf-8")
    return model_path


def md5_of(path: str | Path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------
# The llama-cpp-python sdist and its test vectors


def _download_sdist(sdist_dir: Path) -> Path:
    sdist = sdist_dir / LLAMA_CPP_SDIST
    if sdist.is_file() and tarfile.is_tarfile(sdist):
        return sdist
    sdist_dir.mkdir(parents=True, exist_ok=True)
    _log(f"downloading the {LLAMA_CPP_PACKAGE}=={LLAMA_CPP_VERSION} sdist (~77 MB) from PyPI into {sdist_dir}")
    # --no-binary names the one package: with `:all:` pip would also build the sdist's
    # build dependencies (cmake among them) from source to prepare its metadata, which
    # takes far longer than the download.
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", LLAMA_CPP_PACKAGE,
        f"{LLAMA_CPP_PACKAGE}=={LLAMA_CPP_VERSION}", "-d", str(sdist_dir),
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise FetchError(f"cannot run pip download ({e})") from e
    if proc.returncode != 0 or not sdist.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise FetchError(
            f"pip could not download the {LLAMA_CPP_PACKAGE}=={LLAMA_CPP_VERSION} sdist "
            f"(exit {proc.returncode}): " + " | ".join(tail) + f"; or put {LLAMA_CPP_SDIST} into {sdist_dir}"
        )
    return sdist


def fetch_llama_spm_vocab(cache_dir: str | Path | None = None) -> Path:
    """Path of ggml-vocab-llama-spm.gguf (with its .inp / .out test vectors beside it).

    Downloads the llama-cpp-python sdist into <cache>/sdists once and extracts the three
    files into <cache>/llama-spm. Raises FetchError when that is impossible.
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    out_dir = cache / "llama-spm"
    name = Path(LLAMA_SPM_MEMBER).name
    wanted = [name, name + ".inp", name + ".out"]
    if all((out_dir / w).is_file() for w in wanted):
        return out_dir / name
    cache.mkdir(parents=True, exist_ok=True)
    with _exclusive(cache / ".fetch.lock"):
        if all((out_dir / w).is_file() for w in wanted):
            return out_dir / name
        sdist = _download_sdist(cache / "sdists")
        out_dir.mkdir(parents=True, exist_ok=True)
        try:
            with tarfile.open(sdist) as tf:
                for w in wanted:
                    member = tf.extractfile(str(Path(LLAMA_SPM_MEMBER).parent / w))
                    if member is None:
                        raise KeyError(w)
                    part = out_dir / (w + ".part")
                    part.write_bytes(member.read())
                    part.replace(out_dir / w)
        except (tarfile.TarError, KeyError, OSError) as e:
            raise FetchError(f"{sdist} does not hold {w} ({e}); delete it and retry") from e
    return out_dir / name


def read_test_vectors(gguf: str | Path) -> list[tuple[str, list[int]]]:
    """llama.cpp's tokenizer test vectors beside a vocab GGUF: (text, expected ids).

    `.inp` holds the texts, each followed by a separator line; `.out` one line of ids per
    text (the reference tokenizer's encode(text, add_special_tokens=False)).
    """
    gguf = Path(gguf)
    # Bytes, not read_text: the texts contain '\r\n' that newline translation would change.
    inp = Path(str(gguf) + ".inp").read_bytes().decode("utf-8")
    out = Path(str(gguf) + ".out").read_bytes().decode("utf-8")
    texts = inp.split(TEST_SEPARATOR)
    if texts and texts[-1] == "":
        texts.pop()
    ids = [[int(t) for t in line.split()] for line in out.split("\n")[: len(texts)]]
    if len(ids) != len(texts):
        raise ValueError(f"{gguf}.inp has {len(texts)} texts but {gguf}.out {len(ids)} lines")
    return list(zip(texts, ids, strict=True))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    out_dir = Path(args[0]) if args else default_cache_dir() / "models" / "llama2-tokenizer"
    gguf = fetch_llama_spm_vocab()
    model = write_tokenizer_folder(gguf, out_dir)
    digest = md5_of(model)
    same = "identical to" if digest == LLAMA2_TOKENIZER_MD5 else "DIFFERENT from"
    print(f"{model}: md5 {digest}, {same} Meta's Llama-2 tokenizer.model")
    return 0 if digest == LLAMA2_TOKENIZER_MD5 else 1


if __name__ == "__main__":
    sys.exit(main())
