"""One object for every generation option, checked when made (no torch needed, so the
command checks its options before loading a model), and the part of it that configures a
native Decoder."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

from .aded_options import AdedOptions
from .methods import DRAFT_METHODS, METHOD_CHOICES, resolve_method
from .params import check_params

if TYPE_CHECKING:
    from mtad_ext import TrigramTable

    # A tri-gram table: a file made by `mtad build-trigram` (or Generator.save_table), or a
    # loaded mtad_ext.TrigramTable.
    TableArg = str | os.PathLike[str] | TrigramTable


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


@dataclass(frozen=True)
class GenerateOptions:
    """How one request is decoded and when it stops; Generator.generate / stream take these
    fields as keyword arguments (or a GenerateOptions as `options=`).

    max_new_tokens: the most new tokens. temperature, top_k, top_p: the target's sampling,
    normalize(T, top-k, top-p) of algorithms.md 0 (temperature 0: greedy; top_k 0 and top_p
    0 or 1 keep all). seed: the engine's generator seed (same seed, prompt, models and
    method: same tokens; with gamma "auto", within one process, whose step costs are
    measured once per loaded model). stop: strings that end generation (cut from the text).
    method: "auto" (ar without a draft; with one, sps when temperature is 0, else mtad),
    "ar", "sps", "mtad", "mtad-tree" or "aded" (no draft model: drafts from the tri-gram
    table; greedy it equals ar token for token, sampling is lossless too).
    gamma: draft length, or "auto" (default: each step drafts 0 to max_gamma tokens, whichever
    promises the most tokens per second from the step costs measured on this machine and the
    acceptance so far; 0 is a plain AR step); width: MTAD beam width; tau: MTAD acceptance
    threshold in (0, 1];
    draft_temperature / draft_top_k / draft_top_p: the draft's sampling (None: the
    target's; draft_temperature 0: MTAD's draft is a width-W beam search on the draft's
    plain softmax, its top_k / top_p unused); with_replacement: MTAD beam sampling with replacement.
    table (aded): a tri-gram table file or mtad_ext.TrigramTable that becomes the
    Generator's table from this request on (a file is loaded once; later requests naming
    it reuse the adapted instance); None: the Generator's table. aded: AdedOptions (or a
    mapping of its fields) for method aded; None: the defaults.
    Raises ValueError naming the first invalid option.
    """

    max_new_tokens: int = 128
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] | None = None
    method: str = "auto"
    gamma: int | str = "auto"
    max_gamma: int = 8
    width: int = 4
    tau: float = 0.5
    draft_temperature: float | None = None
    draft_top_k: int | None = None
    draft_top_p: float | None = None
    with_replacement: bool = False
    table: TableArg | None = None
    aded: AdedOptions | None = None  # a mapping of its fields is accepted and converted

    def __post_init__(self) -> None:
        check_params(self.temperature, self.top_k, self.top_p)
        _check_int("max_new_tokens", self.max_new_tokens, 1)
        _check_int("seed", self.seed, 0)
        stop = self.stop
        if stop is not None:
            if isinstance(stop, str) or not all(isinstance(s, str) and s for s in stop):
                raise ValueError("stop must be a list of non-empty strings")
            object.__setattr__(self, "stop", tuple(stop))
        if self.method not in METHOD_CHOICES:
            raise ValueError(f"method must be one of {', '.join(METHOD_CHOICES)}, got {self.method!r}")
        if self.gamma != "auto":
            _check_int("gamma", self.gamma, 1)
        _check_int("max_gamma", self.max_gamma, 1)
        if self.max_gamma > 32:
            raise ValueError(f"max_gamma must be <= 32, got {self.max_gamma}")
        _check_int("width", self.width, 1)
        tau = self.tau
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not (0 < tau <= 1):
            raise ValueError(f"tau must be in (0, 1], got {tau!r}")
        try:
            check_params(*self.draft_sampling())
        except ValueError as e:
            raise ValueError(f"draft {e}") from None
        if not isinstance(self.with_replacement, bool):
            raise ValueError(f"with_replacement must be True or False, got {self.with_replacement!r}")
        # Silently ignoring a table or ADED options would hide a forgotten method="aded".
        if self.table is not None and self.method != "aded":
            raise ValueError(f"a tri-gram table is for method 'aded'; the method is {self.method!r}")
        if self.aded is not None and self.method != "aded":
            raise ValueError(f"ADED options are for method 'aded'; the method is {self.method!r}")
        if self.method == "aded":
            object.__setattr__(self, "aded", AdedOptions.coerce(self.aded))

    @classmethod
    def make(cls, options: GenerateOptions | None = None, **changes: Any) -> GenerateOptions:
        """`options` (None: the defaults) with the fields named in `changes` replaced."""
        if options is not None and not isinstance(options, cls):
            raise ValueError(f"options must be a GenerateOptions, got {type(options).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(k for k in changes if k not in known)
        if unknown:
            raise TypeError(f"unknown generation option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        if options is None:
            return cls(**changes)
        return replace(options, **changes) if changes else options

    def draft_sampling(self) -> tuple[float, int, float]:
        """The draft's (temperature, top_k, top_p): its own where given, else the target's."""
        return (
            self.temperature if self.draft_temperature is None else self.draft_temperature,
            self.top_k if self.draft_top_k is None else self.draft_top_k,
            self.top_p if self.draft_top_p is None else self.draft_top_p,
        )

    def decode_options(self, has_draft: bool, table_given: bool) -> DecodeOptions:
        """The native Decoder's configuration: the method resolved, ADED's adapt_prompt
        resolved (None: on when the table was not given, i.e. can only learn from prompts)."""
        method = resolve_method(self.method, has_draft, self.temperature)
        aded = None
        if method == "aded":
            aded = self.aded if self.aded is not None else AdedOptions()
            if aded.adapt_prompt is None:
                aded = replace(aded, adapt_prompt=not table_given)
        shared = {f.name: getattr(self, f.name) for f in fields(DecodeOptions) if f.name not in ("method", "aded")}
        return DecodeOptions(
            **{**shared, "temperature": float(self.temperature), "top_k": int(self.top_k),
               "top_p": float(self.top_p)},
            method=method, aded=aded,
        )  # fmt: skip


@dataclass(frozen=True)
class DecodeOptions:
    """Everything that configures one native Decoder (a changed field needs a new one); the
    fields are the engine's Decoder keyword arguments, plus ADED's parameters."""

    method: str
    temperature: float
    top_k: int
    top_p: float
    draft_temperature: float | None
    draft_top_k: int | None
    draft_top_p: float | None
    gamma: int | str
    max_gamma: int
    width: int
    tau: float
    with_replacement: bool
    seed: int
    aded: AdedOptions | None = None  # method aded only, adapt_prompt resolved

    def decoder_kwargs(self) -> dict[str, Any]:
        """The mtad_ext.Decoder constructor's keyword arguments (ADED's are set after it)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "aded"}

    def lookahead(self) -> int:
        """How far past the last committed token a step's draft reaches (0 for AR)."""
        if self.method in DRAFT_METHODS:
            return self.max_gamma if self.gamma == "auto" else int(self.gamma)
        return self.aded.lookahead() if self.aded is not None else 0

