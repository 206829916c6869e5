"""ADED's tri-gram table as a Generator holds it: one instance that every ADED request
drafts from and adapts, so it keeps learning across prompts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mtad_ext import TrigramTable

    from .options import TableArg


class TableSlot:
    """The table for a vocabulary: given (a file, loaded once per path, or an object), or an
    empty one made on first use."""

    def __init__(self, vocab_size: int) -> None:
        self.vocab_size = vocab_size
        self._table: Any = None
        self.given = False  # from a file or object: ADED's adapt_prompt defaults to off
        self._files: dict[Path, Any] = {}  # each file is loaded once, then keeps adapting

    @property
    def table(self) -> TrigramTable:
        """The table in use (an empty one is made on first access)."""
        if self._table is None:
            import mtad_ext

            self._table = mtad_ext.TrigramTable(self.vocab_size)
        return self._table

    def use(self, table: TableArg) -> None:
        """Make `table` (a file path or a mtad_ext.TrigramTable) the one in use."""
        import mtad_ext

        if isinstance(table, (str, os.PathLike)):
            path = Path(table).expanduser().resolve()
            if path not in self._files:
                # Raises FileNotFoundError, FormatError, or InputError for another vocabulary.
                self._files[path] = mtad_ext.TrigramTable.load(str(path), vocab_size=self.vocab_size)
            table = self._files[path]
        elif not isinstance(table, mtad_ext.TrigramTable):
            raise ValueError(
                f"table must be a tri-gram table file path or a mtad_ext.TrigramTable, got {type(table).__name__}"
            )
        elif table.vocab_size != self.vocab_size:
            raise mtad_ext.InputError(
                f"the tri-gram table was built for a vocabulary of {table.vocab_size} tokens, "
                f"but the model has {self.vocab_size}"
            )
        self._table = table
        self.given = True

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the table to `path` (versioned, checksummed; written under a temporary name
        and renamed)."""
        try:
            self.table.save(str(Path(path).expanduser()))
        except RuntimeError as e:  # the engine's I/O failure (missing folder, a directory, ...)
            raise OSError(str(e)) from None
