"""A minimal reader of GGUF metadata (the key/value header), with no dependencies.

Used to check a file before converting it (`mtad convert`) and to rebuild a
sentencepiece `tokenizer.model` from a GGUF vocabulary (`mtad.spm_from_gguf`). Tensor
data is never read.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any, BinaryIO

MAGIC = b"GGUF"

# GGUF value types -> struct format of one scalar (strings and arrays are handled apart).
_SCALARS = {
    0: "B",  # uint8
    1: "b",  # int8
    2: "H",  # uint16
    3: "h",  # int16
    4: "I",  # uint32
    5: "i",  # int32
    6: "f",  # float32
    7: "?",  # bool
    10: "Q",  # uint64
    11: "q",  # int64
    12: "d",  # float64
}
_STRING, _ARRAY = 8, 9


class GGUFError(ValueError):
    """The file is not a readable GGUF file."""


class _Reader:
    def __init__(self, fh: BinaryIO, path: Path) -> None:
        self.fh = fh
        self.path = path

    def read(self, n: int) -> bytes:
        data = self.fh.read(n)
        if len(data) != n:
            raise GGUFError(f"{self.path}: truncated GGUF header")
        return data

    def scalar(self, fmt: str) -> Any:
        return struct.unpack("<" + fmt, self.read(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        n = self.scalar("Q")
        if n > 1 << 30:
            raise GGUFError(f"{self.path}: implausible string length {n} in the GGUF header")
        return self.read(n).decode("utf-8", errors="surrogateescape")

    def value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self.scalar(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string()
        if vtype == _ARRAY:
            itype = self.scalar("I")
            count = self.scalar("Q")
            if count > 1 << 28:
                raise GGUFError(f"{self.path}: implausible array length {count} in the GGUF header")
            if itype in _SCALARS:
                fmt = _SCALARS[itype]
                data = self.read(count * struct.calcsize(fmt))
                return list(struct.unpack(f"<{count}{fmt}", data))
            return [self.value(itype) for _ in range(count)]
        raise GGUFError(f"{self.path}: unknown GGUF value type {vtype}")


def read_metadata(path: str | Path) -> dict[str, Any]:
    """All key/value pairs of a GGUF file's header (arrays as lists).

    Raises FileNotFoundError for a missing file and GGUFError (a ValueError) for a file
    that is not GGUF version 2 or 3.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {path}")
    with open(path, "rb") as fh:
        r = _Reader(fh, path)
        magic = fh.read(4)
        if magic != MAGIC:
            raise GGUFError(f"{path} is not a GGUF file (it starts with {magic!r}, not {MAGIC!r})")
        version = r.scalar("I")
        if version not in (2, 3):
            raise GGUFError(f"{path}: GGUF version {version} is not supported (only 2 and 3)")
        r.scalar("Q")  # tensor count
        n_kv = r.scalar("Q")
        meta: dict[str, Any] = {}
        for _ in range(n_kv):
            key = r.string()
            meta[key] = r.value(r.scalar("I"))
    return meta
