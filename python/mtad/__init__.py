"""mtad: the Python driver of the mtad decoding engine.

Tokenisation, chat templates, sampling parameters, decoding methods (AR, speculative
sampling, MTAD with a draft model; ADED with a tri-gram table), stopping and streaming around the native engine
(`mtad_ext`), plus a fetcher for the default model.

Names are imported on first use, so that `import mtad` (and `mtad --help`) does not load
torch and the native engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "AdedOptions": ".aded_options",
    "FetchError": ".fetch",
    "fetch_default": ".fetch",
    "GenerateOptions": ".options",
    "GenerationResult": ".result",
    "Generator": ".generate",
    "IncompatibleDraftError": ".compat",
    "METHODS": ".methods",
    "MtadGreedyWarning": ".methods",
    "load": ".loader",
    "StreamDecoder": ".tokenizer",
    "Tokenizer": ".tokenizer",
}

__all__ = [
    "AdedOptions",
    "FetchError",
    "GenerateOptions",
    "GenerationResult",
    "Generator",
    "IncompatibleDraftError",
    "METHODS",
    "MtadGreedyWarning",
    "StreamDecoder",
    "Tokenizer",
    "fetch_default",
    "load",
]

if TYPE_CHECKING:
    from .aded_options import AdedOptions
    from .compat import IncompatibleDraftError
    from .fetch import FetchError, fetch_default
    from .generate import Generator
    from .loader import load
    from .methods import METHODS, MtadGreedyWarning
    from .options import GenerateOptions
    from .result import GenerationResult
    from .tokenizer import StreamDecoder, Tokenizer


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
