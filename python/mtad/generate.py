"""Generation around the native engine: prompt -> tokens -> text, with any decoding method.

The native `mtad_ext.Decoder` runs the forward passes and one step of a method per call
(AR, speculative sampling, MTAD, multi-candidate MTAD, ADED; algorithms.md); a step emits
one or more tokens. This driver owns tokenisation, the chat template, parameter checks,
the draft/target compatibility check, ADED's tri-gram table (one instance per Generator,
adapted across prompts), stopping (EOS, stop strings, length: cut inside a step's
tokens), streaming and the counters.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from collections.abc import Generator as PyGenerator
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .methods import DRAFT_METHODS, METHOD_CHOICES, METHODS  # noqa: F401  (the engine's method table)
from .params import check_params
from .tokenizer import StreamDecoder, Tokenizer

if TYPE_CHECKING:
    from mtad_ext import TrigramTable

    # A tri-gram table: a file made by `mtad build-trigram` (or Generator.save_table), or a
    # loaded mtad_ext.TrigramTable.
    TableArg = str | os.PathLike[str] | TrigramTable

# Prompt ids decoded before the first new token, so that it reads as it follows the prompt
# (sentencepiece drops the leading space of the first token of a decode).
_STREAM_CONTEXT = 4


class IncompatibleDraftError(ValueError):
    """The draft model cannot assist the target: vocabulary or special tokens differ."""


class MtadGreedyWarning(UserWarning):
    """MTAD with a greedy target (temperature 0): no quality gain over AR (algorithms.md 3.2)."""


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


def _check_int(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


@dataclass(frozen=True)
class AdedOptions:
    """ADED's parameters (algorithms.md 4) with the documented defaults; checked when made.

    MCTS draft maker: simulations per draft; depth (drafted tokens below the root on a
    search path); max_nodes (the draft trie's node budget: the rows one verification pass
    scores; small budgets suit a CPU, where each extra row costs); paths (best paths by
    visit count kept for the trie); extend (extend each kept path of length >= 2 by the
    table's best successor once); c1, c2 (PUCT constants); reward: "table" (1 + the table
    values along the path) or "public" (the public code's nearly constant reward).
    Adaptation of the table before each draft: adapt (on/off); window (the last `window`
    committed tokens), increment (added to each tri-gram there), cap (the most a value
    reaches); adapt_prompt (at a prompt's first step adapt over the whole prompt; None: on
    when the Generator's table was not given, i.e. starts empty and can only learn from
    the prompts, off when it came from a file or object).
    An extension, off by default: lookup (up to this many tokens that followed an earlier
    occurrence of the last 3, else 2, tokens of prompt and reply, added to the trie
    as one more path on top of max_nodes, its length adapting between 1 and lookup; pays
    where replies copy their context, as code completions do; 0: off).
    """

    simulations: int = 150
    depth: int = 3
    max_nodes: int = 64
    paths: int = 24
    extend: bool = True
    c1: float = 32.0
    c2: float = 8.0
    reward: str = "table"
    adapt: bool = True
    window: int = 16
    increment: float = 0.04
    cap: float = 3.0
    adapt_prompt: bool | None = None
    lookup: int = 0

    def __post_init__(self) -> None:
        # The engine checks the same ranges; checking here too gives the message before any
        # model is loaded, and catches types pybind11 would convert silently (True as 1).
        _check_aded_int("simulations", self.simulations, 0, 1_000_000)
        _check_aded_int("depth", self.depth, 1, 64)
        _check_aded_int("max_nodes", self.max_nodes, 0, 4096)
        _check_aded_int("paths", self.paths, 0, None)
        _check_aded_int("window", self.window, 0, None)
        _check_aded_int("lookup", self.lookup, 0, 64)
        _check_aded_real("c1", self.c1, strictly_positive=False)
        _check_aded_real("c2", self.c2, strictly_positive=True)
        _check_aded_real("increment", self.increment, strictly_positive=False)
        _check_aded_real("cap", self.cap, strictly_positive=True)
        if self.reward not in ("table", "public"):
            raise ValueError(f"aded reward must be 'table' or 'public', got {self.reward!r}")
        for name in ("extend", "adapt"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"aded {name} must be True or False, got {getattr(self, name)!r}")
        if self.adapt_prompt is not None and not isinstance(self.adapt_prompt, bool):
            raise ValueError(f"aded adapt_prompt must be True, False or None, got {self.adapt_prompt!r}")

    @classmethod
    def coerce(cls, value: AdedOptions | Mapping[str, Any] | None) -> AdedOptions:
        """AdedOptions from None (the defaults), an AdedOptions, or a mapping of its fields."""
        if value is None:
            return cls()
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            known = {f.name for f in fields(cls)}
            unknown = sorted(str(k) for k in value if k not in known)
            if unknown:
                raise ValueError(f"unknown ADED option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
            return cls(**value)
        raise ValueError(f"aded must be an AdedOptions or a mapping of its fields, got {type(value).__name__}")

    def native(self) -> Any:
        """The engine's mtad_ext.AdedParams (adapt_prompt None counts as off)."""
        import mtad_ext

        kw = asdict(self)
        kw["adapt_prompt"] = bool(kw["adapt_prompt"])
        return mtad_ext.AdedParams(**kw)

    def lookahead(self) -> int:
        """The deepest draft node's distance from the last committed token."""
        return max(self.depth + int(self.extend), self.lookup)


def _check_aded_real(name: str, value: Any, strictly_positive: bool) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or value < 0 or (strictly_positive and value == 0):
        raise ValueError(f"aded {name} must be a finite number {'>' if strictly_positive else '>='} 0, got {value!r}")


def _check_aded_int(name: str, value: Any, minimum: int, maximum: int | None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"aded {name} must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"in [{minimum}, {maximum}]" if maximum is not None else f">= {minimum}"
        raise ValueError(f"aded {name} must be {bound}, got {value}")


@dataclass(frozen=True)
class DecodeOptions:
    """Everything that configures one native Decoder (a changed field needs a new one)."""

    method: str
    temperature: float
    top_k: int
    top_p: float
    draft_temperature: float | None
    draft_top_k: int | None
    draft_top_p: float | None
    gamma: int
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
            return self.gamma
        return self.aded.lookahead() if self.aded is not None else 0


@dataclass
class GenerationResult:
    """What one generate() call produced.

    token_ids are the new tokens, including the EOS token when finish_reason is "eos" and
    the token that completed a stop string when it is "stop"; text excludes both (special
    tokens are skipped, the stop string and anything after it are cut). A step that emits
    several tokens is cut at the token that ends generation.

    counters (times exclude time spent by a streaming consumer between pieces):
      prefill_seconds (the prompt pass), decode_seconds (all steps), total_seconds,
      decode_tokens_per_s (new tokens / decode time), tokens_per_s (new tokens / total),
      steps, target_forwards and draft_forwards (decoding passes; the prompt pass is not
      counted; a model with learned positions that finishes with AR near the end of its
      position table adds one), drafted and accepted (draft tokens put before the target,
      every node of the tree for mtad-tree and of the trie for aded, and those it
      accepted), acceptance_rate (accepted / drafted), tokens_per_target_forward (new
      tokens per target pass: the block efficiency, 1 for AR), and the engine's time split
      draft_seconds, verify_seconds, rollback_seconds, other_seconds.
    """

    text: str
    token_ids: list[int]
    prompt_tokens: int
    finish_reason: str  # "eos" | "stop" | "length"
    method: str = "ar"
    counters: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _StopMatcher:
    """Finds stop strings in streamed text and holds back text that may start one."""

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.maxlen = max((len(s) for s in self.stops), default=0)
        self.text = ""
        self.emitted = 0

    def feed(self, piece: str) -> tuple[str, bool]:
        """Add text; return (text safe to emit now, whether a stop string was found)."""
        self.text += piece
        if not self.stops:
            out, self.emitted = self.text[self.emitted :], len(self.text)
            return out, False
        # A stop string cannot lie wholly inside emitted text (it would have been caught),
        # so search only from where one could still begin.
        start = max(0, self.emitted - self.maxlen)
        hits = [i for s in self.stops if (i := self.text.find(s, start)) >= 0]
        if hits:
            cut = min(hits)
            out = self.text[self.emitted : cut]
            self.text = self.text[:cut]
            self.emitted = cut
            return out, True
        hold = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(self.text)), hold, -1):
                if self.text.endswith(s[:k]):
                    hold = k
                    break
        safe = len(self.text) - hold
        out = self.text[self.emitted : safe]
        self.emitted = max(self.emitted, safe)
        return out, False

    def finish(self) -> str:
        """Release held-back text at the end of generation."""
        out, self.emitted = self.text[self.emitted :], len(self.text)
        return out


# ---------------------------------------------------------------------------------------
# Draft / target compatibility


def _model_ids(config: Mapping[str, Any]) -> dict[str, int | None]:
    def one(v: Any) -> int | None:
        if isinstance(v, list):
            v = v[0] if v else None
        return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None

    return {name: one(config.get(f"{name}_token_id")) for name in ("bos", "eos", "pad")}


def check_draft_compatible(
    target_config: Mapping[str, Any],
    target_tokenizer: Tokenizer,
    draft_config: Mapping[str, Any],
    draft_tokenizer: Tokenizer | None = None,
    target_name: str = "the target",
    draft_name: str = "the draft",
) -> None:
    """Raise IncompatibleDraftError naming every difference that makes `draft` unusable.

    Checked: the models' vocabulary size; with a draft tokenizer, its size, bos/eos/pad
    ids, its special tokens (string -> id) and the whole token -> id map; without one,
    the draft config's bos/eos/pad ids against the target's.
    """
    problems: list[str] = []
    tv, dv = target_config.get("vocab_size"), draft_config.get("vocab_size")
    if tv != dv:
        problems.append(f"vocabulary size {dv} vs {tv}")
    if draft_tokenizer is not None:
        t, d = target_tokenizer, draft_tokenizer
        if d.vocab_size != t.vocab_size:
            problems.append(f"tokenizer vocabulary size {d.vocab_size} vs {t.vocab_size}")
        for name in ("bos", "eos", "pad"):
            ti, di = getattr(t, f"{name}_token_id"), getattr(d, f"{name}_token_id")
            if ti != di:
                problems.append(f"{name} token id {di} vs {ti}")
        ts, ds = t.special_vocab, d.special_vocab
        if ts != ds:
            diff = [f"{k!r}={v}" for k, v in ds.items() if ts.get(k) != v][:4]
            diff += [f"no {k!r}" for k in ts if k not in ds][:4]
            problems.append(f"special tokens differ ({', '.join(diff)})")
        elif not problems:
            tvoc, dvoc = t.get_vocab(), d.get_vocab()
            if tvoc != dvoc:
                bad = [k for k, v in dvoc.items() if tvoc.get(k) != v]
                ex = ", ".join(f"{k!r}={dvoc[k]} vs {tvoc.get(k)}" for k in sorted(bad, key=dvoc.get)[:3])
                problems.append(f"{len(bad)} tokens map to other ids ({ex})")
    else:
        tids, dids = _model_ids(target_config), _model_ids(draft_config)
        for name in ("bos", "eos", "pad"):
            if dids[name] is not None and tids[name] is not None and dids[name] != tids[name]:
                problems.append(f"{name} token id {dids[name]} vs {tids[name]}")
    if problems:
        raise IncompatibleDraftError(
            f"draft {draft_name} is incompatible with target {target_name} (draft vs target): "
            + "; ".join(problems)
        )


# ---------------------------------------------------------------------------------------
# The generator


class Generator:
    """Decoding with a target model, an optional draft model, a tokenizer and one reusable
    native Decoder (rebuilt only when the method, its parameters, the seed or the needed
    cache size change).

    model / draft: `mtad_ext.Model`s. draft_tokenizer: the draft folder's tokenizer, when
    it has one, for the compatibility check. cache_capacity: a fixed cache size in tokens;
    by default the caches are allocated on first use and grown (to a power of two, at most
    the models' max_position_embeddings) when a request needs more.
    table: ADED's tri-gram table, a file (`mtad build-trigram`, save_table) loaded now for
    the model's vocabulary, or a mtad_ext.TrigramTable; None: an empty table made on first
    use. Every ADED request drafts from and adapts the same table instance, so it keeps
    learning across prompts; save_table() writes it back.
    Raises IncompatibleDraftError when the draft cannot assist the target, and
    mtad_ext.InputError (a ValueError) when the table was built for another vocabulary.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Tokenizer,
        cache_capacity: int | None = None,
        draft: Any = None,
        draft_tokenizer: Tokenizer | None = None,
        check_draft: bool = True,
        table: TableArg | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.draft = draft
        self.config: dict[str, Any] = dict(model.config)
        self.draft_config: dict[str, Any] | None = dict(draft.config) if draft is not None else None
        if draft is not None and check_draft:
            check_draft_compatible(
                self.config,
                tokenizer,
                self.draft_config or {},
                draft_tokenizer,
                target_name=str(tokenizer.model_dir),
                draft_name=str(draft_tokenizer.model_dir) if draft_tokenizer is not None else "model",
            )
        limits = [int(c.get("max_position_embeddings") or 0) for c in (self.config, self.draft_config or {})]
        limits = [n for n in limits if n > 0]
        self.max_positions: int | None = min(limits) if limits else None
        # Models with learned positions (OPT) cannot look past their table, not even for
        # draft tokens that will be thrown away; RoPE models can.
        learned = [int(c.get("max_position_embeddings") or 0) for c in (self.config, self.draft_config or {})
                   if c.get("arch", c.get("model_type")) == "opt"]  # fmt: skip
        self._position_table: int | None = min(learned) if learned else None
        if cache_capacity is not None and (isinstance(cache_capacity, bool) or cache_capacity < 1):
            raise ValueError(f"cache_capacity must be >= 1, got {cache_capacity}")
        self._fixed_capacity = cache_capacity
        self._decoder: Any = None
        self._decoder_key: tuple[DecodeOptions, int] | None = None
        eos = set(tokenizer.eos_token_ids)
        cfg_eos = self.config.get("eos_token_id", -1)
        if isinstance(cfg_eos, int) and cfg_eos >= 0:
            eos.add(cfg_eos)
        self.eos_token_ids: frozenset[int] = frozenset(eos)
        self.last_result: GenerationResult | None = None
        self._table: Any = None
        self._table_given = False  # from a file or object: adapt_prompt defaults to off
        self._table_files: dict[Path, Any] = {}  # each file is loaded once, then keeps adapting
        if table is not None:
            self._use_table(table)

    # -- ADED's tri-gram table ------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """The target's vocabulary size (a tri-gram table must be built for it)."""
        return int(self.config["vocab_size"])

    @property
    def table(self) -> TrigramTable:
        """The tri-gram table ADED requests use (an empty one is made on first access)."""
        if self._table is None:
            import mtad_ext

            self._table = mtad_ext.TrigramTable(self.vocab_size)
        return self._table

    def _use_table(self, table: TableArg) -> None:
        import mtad_ext

        if isinstance(table, (str, os.PathLike)):
            path = Path(table).expanduser().resolve()
            if path not in self._table_files:
                # Raises FileNotFoundError, FormatError, or InputError for another vocabulary.
                self._table_files[path] = mtad_ext.TrigramTable.load(str(path), vocab_size=self.vocab_size)
            table = self._table_files[path]
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
        self._table_given = True

    def save_table(self, path: str | os.PathLike[str]) -> None:
        """Write the tri-gram table, with everything it has learned, to `path` (a versioned,
        checksummed file that `table=` loads back; written under a temporary name and renamed)."""
        try:
            self.table.save(str(Path(path).expanduser()))
        except RuntimeError as e:  # the engine's I/O failure (missing folder, a directory, ...)
            raise OSError(str(e)) from None

    # -- decoder and cache ----------------------------------------------------------

    @property
    def decoder(self) -> Any:
        """The native Decoder of the last request (None before the first)."""
        return self._decoder

    @property
    def cache(self) -> Any:
        """The target's KV cache of the last request (None before the first)."""
        return None if self._decoder is None else self._decoder.target_cache

    def _capacity_for(self, needed: int) -> int:
        if self._fixed_capacity is not None:
            if needed > self._fixed_capacity:
                raise ValueError(
                    f"prompt plus max_new_tokens needs {needed} cache slots but the cache "
                    f"holds {self._fixed_capacity}"
                )
            return self._fixed_capacity
        if self._decoder_key is not None and self._decoder_key[1] >= needed:
            return self._decoder_key[1]
        # Grow by powers of two so that a series of growing requests reallocates rarely.
        cap = max(256, 1 << (needed - 1).bit_length())
        if self.max_positions is not None:
            cap = min(cap, self.max_positions)
        return max(cap, needed)

    def _make_decoder(self, opts: DecodeOptions, capacity: int) -> Any:
        import mtad_ext

        draft = self.draft if opts.method in DRAFT_METHODS else None
        if opts.aded is None or opts.method != "aded":
            return mtad_ext.Decoder(self.model, draft, capacity=capacity, **opts.decoder_kwargs())
        params = opts.aded.native()
        # The constructor sizes the caches' step room for the default node budget; a larger
        # budget set afterwards takes its excess out of the capacity, so add it here.
        extra = max(0, params.max_nodes - mtad_ext.AdedParams().max_nodes)
        dec = mtad_ext.Decoder(self.model, None, capacity=capacity + extra, **opts.decoder_kwargs())
        dec.aded_params = params
        return dec

    def _decoder_for(self, opts: DecodeOptions, needed: int) -> Any:
        capacity = self._capacity_for(needed)
        key = (opts, capacity)
        if self._decoder is None or self._decoder_key != key:
            self._decoder = None  # free the old caches before allocating new ones
            self._decoder_key = None
            self._decoder = self._make_decoder(opts, capacity)
            self._decoder_key = key
        return self._decoder

    # -- prompt ---------------------------------------------------------------------

    def encode_prompt(
        self, prompt: str | None = None, messages: Sequence[Mapping[str, Any]] | None = None
    ) -> list[int]:
        """Prompt ids: raw text with the tokenizer's special tokens, or a chat rendered
        with the folder's chat template (tokenised without adding special tokens)."""
        if (prompt is None) == (messages is None):
            raise ValueError("give exactly one of prompt or messages")
        if messages is not None:
            text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True)
            ids = self.tokenizer.encode(text, add_special_tokens=False)
        else:
            if not isinstance(prompt, str):
                raise ValueError(f"prompt must be a string, got {type(prompt).__name__}")
            ids = self.tokenizer.encode(prompt, add_special_tokens=True)
        if not ids:
            # An empty prompt still needs one token to condition on.
            if self.tokenizer.bos_token_id is None:
                raise ValueError("the prompt is empty and the tokenizer has no BOS token")
            ids = [self.tokenizer.bos_token_id]
        return ids

    # -- arguments ------------------------------------------------------------------

    @staticmethod
    def check_args(
        max_new_tokens: int,
        temperature: float,
        top_k: int,
        top_p: float,
        seed: int,
        stop: Sequence[str] | None,
        *,
        method: str = "auto",
        gamma: int = 4,
        width: int = 4,
        tau: float = 0.5,
        draft_temperature: float | None = None,
        draft_top_k: int | None = None,
        draft_top_p: float | None = None,
        with_replacement: bool = False,
        table: TableArg | None = None,
        aded: AdedOptions | Mapping[str, Any] | None = None,
    ) -> None:
        """Raise ValueError naming the first invalid generation argument."""
        check_params(temperature, top_k, top_p)
        _check_int("max_new_tokens", max_new_tokens, 1)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        if stop is not None and (
            isinstance(stop, str) or not all(isinstance(s, str) and s for s in stop)
        ):
            raise ValueError("stop must be a list of non-empty strings")
        if method not in METHOD_CHOICES:
            raise ValueError(f"method must be one of {', '.join(METHOD_CHOICES)}, got {method!r}")
        _check_int("gamma", gamma, 1)
        _check_int("width", width, 1)
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not (0 < tau <= 1):
            raise ValueError(f"tau must be in (0, 1], got {tau!r}")
        try:
            check_params(
                temperature if draft_temperature is None else draft_temperature,
                top_k if draft_top_k is None else draft_top_k,
                top_p if draft_top_p is None else draft_top_p,
            )
        except ValueError as e:
            raise ValueError(f"draft {e}") from None
        if not isinstance(with_replacement, bool):
            raise ValueError(f"with_replacement must be True or False, got {with_replacement!r}")
        # Silently ignoring a table or ADED options would hide a forgotten method="aded".
        if table is not None and method != "aded":
            raise ValueError(f"a tri-gram table is for method 'aded'; the method is {method!r}")
        if aded is not None and method != "aded":
            raise ValueError(f"ADED options are for method 'aded'; the method is {method!r}")
        if method == "aded":
            AdedOptions.coerce(aded)

    def _options(self, temperature: float, top_k: int, top_p: float, seed: int, **kw: Any) -> DecodeOptions:
        method = resolve_method(kw.pop("method"), self.draft is not None, temperature)
        aded_arg = kw.pop("aded", None)
        aded = None
        if method == "aded":
            aded = AdedOptions.coerce(aded_arg)
            if aded.adapt_prompt is None:
                # An empty table can only learn from the prompts: let it read the whole prompt.
                aded = replace(aded, adapt_prompt=not self._table_given)
        opts = DecodeOptions(
            method=method, temperature=float(temperature), top_k=int(top_k), top_p=float(top_p), seed=seed,
            aded=aded, **kw,
        )  # fmt: skip
        if method in ("mtad", "mtad-tree") and temperature == 0:
            warnings.warn(
                f"method {method} with a greedy target (temperature 0) gives no quality gain over "
                "AR decoding (algorithms.md 3.2); use a temperature > 0 for MTAD's joint sampling, "
                "or method sps for an exact greedy speed-up",
                MtadGreedyWarning,
                stacklevel=4,
            )
        return opts

    # -- generation -----------------------------------------------------------------

    def generate(
        self,
        prompt: str | None = None,
        messages: Sequence[Mapping[str, Any]] | None = None,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int = 0,
        stop: Sequence[str] | None = None,
        *,
        method: str = "auto",
        gamma: int = 4,
        width: int = 4,
        tau: float = 0.5,
        draft_temperature: float | None = None,
        draft_top_k: int | None = None,
        draft_top_p: float | None = None,
        with_replacement: bool = False,
        table: TableArg | None = None,
        aded: AdedOptions | Mapping[str, Any] | None = None,
    ) -> GenerationResult:
        """Generate a completion of `prompt` (raw text) or `messages` (chat).

        Greedy when temperature is 0; otherwise samples from normalize(T, top_k, top_p)
        (algorithms.md 0) with the engine's generator seeded by `seed` (same seed, prompt,
        models and method: same tokens). Stops on EOS, on any string in `stop` (cut from
        the text), or after max_new_tokens.

        method: "auto" (ar without a draft; with one, sps when temperature is 0, else
        mtad), "ar", "sps", "mtad", "mtad-tree" or "aded" (no draft model: drafts from the
        tri-gram table; greedy it equals ar token for token, sampling is lossless too).
        gamma: draft length; width: MTAD beam width; tau: MTAD acceptance threshold in
        (0, 1]; draft_temperature / draft_top_k / draft_top_p: the draft's sampling (None:
        the target's); with_replacement: MTAD beam sampling with replacement.
        table (aded): a tri-gram table file or mtad_ext.TrigramTable that becomes the
        Generator's table from this call on (a file is loaded once; later calls naming it
        reuse the adapted instance); None: the Generator's table. aded: AdedOptions (or a
        mapping of its fields) for method aded; None: the defaults.
        """
        run = self._run(
            prompt, messages, max_new_tokens, temperature, top_k, top_p, seed, stop,
            method=method, gamma=gamma, width=width, tau=tau, draft_temperature=draft_temperature,
            draft_top_k=draft_top_k, draft_top_p=draft_top_p, with_replacement=with_replacement,
            table=table, aded=aded,
        )  # fmt: skip
        while True:
            try:
                next(run)
            except StopIteration as done:
                result: GenerationResult = done.value
                return result

    def stream(
        self,
        prompt: str | None = None,
        messages: Sequence[Mapping[str, Any]] | None = None,
        max_new_tokens: int = 128,
        temperature: float = 0.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int = 0,
        stop: Sequence[str] | None = None,
        *,
        method: str = "auto",
        gamma: int = 4,
        width: int = 4,
        tau: float = 0.5,
        draft_temperature: float | None = None,
        draft_top_k: int | None = None,
        draft_top_p: float | None = None,
        with_replacement: bool = False,
        table: TableArg | None = None,
        aded: AdedOptions | Mapping[str, Any] | None = None,
    ) -> Iterator[str]:
        """Like generate(), but yields text pieces as they are produced (one per step).

        Arguments are checked, and the prompt encoded, before the first piece is requested.
        The joined pieces equal the result's text; the GenerationResult is in
        `self.last_result` afterwards (and is the generator's return value).
        """
        run = self._run(
            prompt, messages, max_new_tokens, temperature, top_k, top_p, seed, stop,
            method=method, gamma=gamma, width=width, tau=tau, draft_temperature=draft_temperature,
            draft_top_k=draft_top_k, draft_top_p=draft_top_p, with_replacement=with_replacement,
            table=table, aded=aded,
        )  # fmt: skip
        # Run up to the first yield point (a None) now, so that bad arguments fail at the call.
        next(run)
        return self._resume(run)

    @staticmethod
    def _resume(run: PyGenerator[str | None, None, GenerationResult]) -> PyGenerator[str, None, GenerationResult]:
        # After the first, every yield of _run is a non-empty piece.
        result = yield from run  # type: ignore[misc]
        return result

    def _run(
        self,
        prompt: str | None,
        messages: Sequence[Mapping[str, Any]] | None,
        max_new_tokens: int,
        temperature: float,
        top_k: int,
        top_p: float,
        seed: int,
        stop: Sequence[str] | None,
        **method_kw: Any,
    ) -> PyGenerator[str | None, None, GenerationResult]:
        self.check_args(max_new_tokens, temperature, top_k, top_p, seed, stop, **method_kw)
        table = method_kw.pop("table", None)
        if table is not None:
            self._use_table(table)
        opts = self._options(temperature, top_k, top_p, seed, **method_kw)
        prompt_ids = self.encode_prompt(prompt, messages)
        n_prompt = len(prompt_ids)
        if self.max_positions is not None and n_prompt + max_new_tokens > self.max_positions:
            raise ValueError(
                f"prompt ({n_prompt} tokens) plus max_new_tokens ({max_new_tokens}) exceeds the "
                f"model's context of {self.max_positions} tokens"
            )
        dec = self._decoder_for(opts, n_prompt + max_new_tokens)
        if opts.method == "aded":
            dec.set_trigram_table(self.table)  # the decoder may be reused, the table may have changed
        # Everything above ran at the call; the rest runs as the pieces are requested.
        yield None

        decoder = StreamDecoder(self.tokenizer, skip_special_tokens=True, context=prompt_ids[-_STREAM_CONTEXT:])
        matcher = _StopMatcher(stop or ())
        new_ids: list[int] = []
        finish = "length"
        steps = 0
        paused = 0.0  # time spent suspended in `yield`, i.e. by the consumer

        t0 = time.perf_counter()
        dec.start(prompt_ids)  # the prompt pass (all but its last token, which step 1 feeds)
        t_prefill = time.perf_counter()
        done = False
        handover: dict[str, float] = {}
        # Models with learned positions: no draft may reach past the position table.
        lookahead = opts.lookahead() if self._position_table is not None else 0
        positions = self._position_table or 0
        while not done:
            if lookahead and len(dec.tokens) + lookahead > positions:
                # The next draft would run past the position table: finish with AR.
                handover = _add_stats(handover, dec.total_stats)
                handover["target_forwards"] += 1  # the AR decoder's prompt pass
                committed = list(dec.tokens)
                dec = self._make_decoder(replace(opts, method="ar"), n_prompt + max_new_tokens)
                dec.start(committed)
                lookahead = 0  # once: AR never drafts
            emitted = dec.step()
            steps += 1
            text = ""
            for tok_id in emitted:
                new_ids.append(tok_id)
                if tok_id in self.eos_token_ids:
                    finish, done = "eos", True
                    break
                piece, stopped = matcher.feed(decoder.push(tok_id))
                text += piece
                if stopped:
                    finish, done = "stop", True
                    break
                if len(new_ids) >= max_new_tokens:
                    done = True
                    break
            if text:
                t_y = time.perf_counter()
                yield text
                paused += time.perf_counter() - t_y

        if finish != "stop":
            # Text held back for an unfinished character or a possible stop string.
            piece, stopped = matcher.feed(decoder.flush())
            piece += "" if stopped else matcher.finish()
            if stopped:
                finish = "stop"
            if piece:
                t_y = time.perf_counter()
                yield piece
                paused += time.perf_counter() - t_y
        t_end = time.perf_counter()

        prefill_s = t_prefill - t0
        decode_s = max(t_end - t_prefill - paused, 0.0)
        total_s = prefill_s + decode_s
        n_new = len(new_ids)
        stats = _add_stats(handover, dec.total_stats)
        forwards = int(stats.get("target_forwards", 0))
        drafted = int(stats.get("drafted", 0))
        result = GenerationResult(
            text=matcher.text,
            token_ids=new_ids,
            prompt_tokens=n_prompt,
            finish_reason=finish,
            method=opts.method,
            counters={
                "prefill_seconds": prefill_s,
                "decode_seconds": decode_s,
                "total_seconds": total_s,
                "decode_tokens_per_s": n_new / decode_s if decode_s else 0.0,
                "tokens_per_s": n_new / total_s if total_s else 0.0,
                "steps": steps,
                "target_forwards": forwards,
                "draft_forwards": int(stats.get("draft_forwards", 0)),
                "drafted": drafted,
                "accepted": int(stats.get("accepted", 0)),
                "acceptance_rate": stats.get("accepted", 0) / drafted if drafted else 0.0,
                "tokens_per_target_forward": n_new / forwards if forwards else 0.0,
                "draft_seconds": float(stats.get("draft_s", 0.0)),
                "verify_seconds": float(stats.get("verify_s", 0.0)),
                "rollback_seconds": float(stats.get("rollback_s", 0.0)),
                "other_seconds": float(stats.get("other_s", 0.0)),
            },
        )
        self.last_result = result
        return result


def _add_stats(a: Mapping[str, float], b: Mapping[str, float]) -> dict[str, float]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in set(a) | set(b)}


def _folder(path: str | Path, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {p}")
    return p


def load(
    model_dir: str | Path,
    draft_dir: str | Path | None = None,
    device: str = "cpu",
    dtype: str = "auto",
    draft_dtype: str | None = None,
    mmap: bool = False,
    table: TableArg | None = None,
    **kwargs: Any,
) -> Generator:
    """Load a model folder (config.json, safetensors, tokenizer) and optionally a draft
    folder into a Generator.

    dtype: on the CPU the storage of the weight matrices (auto = float32, float16,
    bfloat16; compute is float32), on a GPU the run dtype. draft_dtype: the draft's
    (None: the same as dtype). The draft's tokenizer, when its folder has one, must match
    the target's (IncompatibleDraftError otherwise). table: ADED's tri-gram table file
    (`mtad build-trigram`), loaded for the model's vocabulary (mtad_ext.InputError when it
    was built for another), or a mtad_ext.TrigramTable; None: an empty table that learns
    from the prompts. Extra keyword arguments go to Generator (e.g. cache_capacity).
    """
    path = _folder(model_dir, "model")
    dpath = _folder(draft_dir, "draft") if draft_dir is not None else None
    if dtype not in ("auto", "float32", "float16", "bfloat16"):
        raise ValueError(f"dtype must be one of auto, float32, float16, bfloat16, got {dtype!r}")
    if draft_dtype is not None and draft_dtype not in ("auto", "float32", "float16", "bfloat16"):
        raise ValueError(f"draft_dtype must be one of auto, float32, float16, bfloat16, got {draft_dtype!r}")
    if isinstance(table, (str, os.PathLike)) and not Path(table).expanduser().is_file():
        # Before the weights are read; the engine reports a bad or mismatched file when loading it.
        raise FileNotFoundError(f"tri-gram table not found: {Path(table).expanduser()}")
    # Tokenizers first: they are cheap and their errors (no tokenizer, bad files) should
    # come before loading hundreds of megabytes of weights.
    tokenizer = Tokenizer(path)
    draft_tokenizer = None
    if dpath is not None and ((dpath / "tokenizer.json").is_file() or (dpath / "tokenizer.model").is_file()):
        draft_tokenizer = Tokenizer(dpath)
    checked = False
    if dpath is not None:
        # Check what the folders say before the weights are read.
        import json

        try:
            dcfg = json.loads((dpath / "config.json").read_text(encoding="utf-8"))
            tcfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass  # the loader reports missing or malformed config files itself
        else:
            if isinstance(dcfg, dict) and isinstance(tcfg, dict):
                check_draft_compatible(tcfg, tokenizer, dcfg, draft_tokenizer, str(path), str(dpath))
                checked = True
    import mtad_ext  # imported here so that tokenizers and checks work without torch

    model = mtad_ext.load_model(str(path), device=device, dtype=dtype, mmap=mmap)
    draft = None
    if dpath is not None:
        draft = mtad_ext.load_model(str(dpath), device=device, dtype=draft_dtype or dtype, mmap=mmap)
    return Generator(
        model, tokenizer, draft=draft, draft_tokenizer=draft_tokenizer, check_draft=not checked, table=table,
        **kwargs,
    )  # fmt: skip

