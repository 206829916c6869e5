"""The decoding methods the driver offers, which are lossless, and what "auto" runs.

The names come from the engine's one method table (`mtad_ext.METHODS`), read on first use
so that importing the driver or the command line's parser (`mtad --help`) does not load
torch and the native engine.
"""

from __future__ import annotations

import warnings
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
# MTAD's own methods: joint acceptance by likelihood ratio, not lossless by design.
MTAD_METHODS: tuple[str, ...] = ("mtad", "mtad-tree")
# Their outputs follow the same distribution as AR sampling at the same settings.
LOSSLESS_METHODS: tuple[str, ...] = ("ar", "sps", "aded")
# The MTAD paper's sampling settings (T, top-k, top-p).
PAPER_SAMPLING: dict[str, float | int] = {"temperature": 1.0, "top_k": 10, "top_p": 0.9}


class MtadGreedyWarning(UserWarning):
    """MTAD with a greedy target (temperature 0): no quality gain over AR (algorithms.md 3.2)."""


def is_lossless(method: str) -> bool:
    """Whether `method` samples from the same distribution as AR sampling (greedy: the same tokens)."""
    return method in LOSSLESS_METHODS


def resolve_method(method: str, has_draft: bool, temperature: float) -> str:
    """The method that runs: "auto" is ar without a draft; with one, sps when greedy
    (temperature 0, where MTAD adds nothing and SpS is exact) and mtad when sampling."""
    if method not in METHOD_CHOICES:
        raise ValueError(f"method must be one of {', '.join(METHOD_CHOICES)}, got {method!r}")
    if method == "auto":
        if not has_draft:
            return "ar"
        return "sps" if temperature == 0 else "mtad"
    if method in DRAFT_METHODS and not has_draft:
        raise ValueError(
            f"method {method!r} needs a draft model: load one with mtad.load(..., draft_dir=...) "
            "(or --draft DIR on the command line)"
        )
    return method


def warn_if_greedy_mtad(method: str, temperature: float, stacklevel: int) -> None:
    """MtadGreedyWarning when an MTAD method runs with a greedy target."""
    if method in MTAD_METHODS and temperature == 0:
        warnings.warn(
            f"method {method} with a greedy target (temperature 0) gives no quality gain over "
            "AR decoding (algorithms.md 3.2); use a temperature > 0 for MTAD's joint sampling, "
            "or method sps for an exact greedy speed-up",
            MtadGreedyWarning,
            stacklevel=stacklevel + 1,
        )
