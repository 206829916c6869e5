"""ADED's options (algorithms.md 4), checked when made, and their engine form."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True)
class AdedOptions:
    """ADED's parameters (algorithms.md 4) with the documented defaults; checked when made.

    MCTS draft maker: simulations per draft; depth (drafted tokens below the root on a
    search path); max_nodes (the draft trie's node budget: the rows one verification pass
    scores; small budgets suit a CPU, where each extra row costs; "auto", the default:
    each step chooses 0 to 64 nodes for the most expected tokens per second, from the
    acceptance seen per trie rank and the measured cost of a pass, 0 being an AR step);
    paths (best paths by
    visit count kept for the trie); extend (extend each kept path of length >= 2 by the
    table's best successor once); c1, c2 (PUCT constants); reward: "table" (1 + the table
    values along the path) or "public" (the public code's nearly constant reward).
    Adaptation of the table before each draft: adapt (on/off); window (the last `window`
    committed tokens), increment (added to each tri-gram there), cap (the most a value
    reaches); adapt_prompt (at a prompt's first step adapt over the whole prompt; None: on
    when the Generator's table was not given, i.e. starts empty and can only learn from
    the prompts, off when it came from a file or object).
    An extension, on by default: lookup (up to this many tokens that followed an earlier
    occurrence of the last 3, else 2, tokens of prompt and reply, added to the trie
    as one more path on top of max_nodes, its length adapting between 1 and lookup; pays
    where replies copy their context, as code completions do, and costs no row where no
    earlier occurrence is found; 0: off. Default 6: with the automatic node budget, on 4
    held-out prompts per set, 128 greedy tokens, tokens per target forward 1.40 -> 1.50
    (HumanEval), 1.25 -> 1.28 (chat), 1.14 -> 1.16 (MT-Bench) against lookup 0, speed
    +4 %, +13 % and -1 %; lookup 8 was no better, 12 was 4 % slower on MT-Bench). Its
    lookahead (6) is also how far from a learned position table (OPT) a Generator
    finishes with AR steps.
    """

    simulations: int = 150
    depth: int = 3
    max_nodes: int | str = "auto"
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
    lookup: int = 6

    def __post_init__(self) -> None:
        # The engine checks the same ranges; checking here too gives the message before any
        # model is loaded, and catches types pybind11 would convert silently (True as 1).
        _check_aded_int("simulations", self.simulations, 0, 1_000_000)
        _check_aded_int("depth", self.depth, 1, 64)
        if self.max_nodes != "auto":
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
