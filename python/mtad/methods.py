"""The decoding methods' names, from the engine's one method table (`mtad_ext.METHODS`).

Read on first use, so that importing the driver or the command line's parser (`mtad --help`)
does not load torch and the native engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import overload


class _EngineNames(Sequence[str]):
    """An immutable sequence of names read from a tuple of `mtad_ext` when first used."""

    def __init__(self, attr: str, leading: tuple[str, ...] = ()) -> None:
        self._attr = attr
        self._leading = leading
        self._names: tuple[str, ...] | None = None

    def _get(self) -> tuple[str, ...]:
        if self._names is None:
            import mtad_ext

            self._names = (*self._leading, *getattr(mtad_ext, self._attr))
        return self._names

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[str]: ...
    def __getitem__(self, i: int | slice) -> str | Sequence[str]:
        return self._get()[i]

    def __len__(self) -> int:
        return len(self._get())

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, Sequence) else other)

    def __hash__(self) -> int:
        return hash(self._get())

    def __repr__(self) -> str:
        return repr(self._get())


# Every method the engine runs; those that need a draft model; what --method accepts.
METHODS: Sequence[str] = _EngineNames("METHODS")
DRAFT_METHODS: Sequence[str] = _EngineNames("DRAFT_METHODS")
METHOD_CHOICES: Sequence[str] = _EngineNames("METHODS", ("auto",))
