"""mtad: the Python driver of the mtad decoding engine.

Tokenisation, chat templates, sampling parameters, stopping and streaming around the
native engine (`mtad_ext`), plus a fetcher for the default model.
"""

from .fetch import FetchError, fetch_default
from .generate import GenerationResult, Generator, load
from .tokenizer import StreamDecoder, Tokenizer

__all__ = [
    "FetchError",
    "GenerationResult",
    "Generator",
    "StreamDecoder",
    "Tokenizer",
    "fetch_default",
    "load",
]
