"""Autoregressive generation around the native engine: prompt -> tokens -> text.

The engine does the forward passes; this driver owns tokenisation, the chat template,
sampling parameters, stopping (EOS, stop strings, length), streaming and timing.
"""

from __future__ import annotations

import time
from collections.abc import Generator as PyGenerator
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .sampling import check_params, normalize, sample
from .tokenizer import StreamDecoder, Tokenizer

# Prompt ids decoded before the first new token, so that it reads as it follows the prompt
# (sentencepiece drops the leading space of the first token of a decode).
_STREAM_CONTEXT = 4


@dataclass
class GenerationResult:
    """What one generate() call produced.

    token_ids are the new tokens, including the EOS token when finish_reason is "eos" and
    the token that completed a stop string when it is "stop"; text excludes both (special
    tokens are skipped, the stop string and anything after it are cut).
    counters: target_forwards, prefill_seconds, decode_seconds, decode_tokens_per_s
    (tokens after the first / decode time), total_seconds, tokens_per_s (all new tokens /
    total time). Times exclude time spent by a streaming consumer between pieces.
    """

    text: str
    token_ids: list[int]
    prompt_tokens: int
    finish_reason: str  # "eos" | "stop" | "length"
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


class Generator:
    """Autoregressive decoding with one model, its tokenizer and one reusable KV cache.

    model: an `mtad_ext.Model`. cache_capacity: a fixed cache size in tokens; by default
    the cache is allocated on first use and grown (to a power of two, at most the model's
    max_position_embeddings) when a request needs more.
    """

    def __init__(self, model: Any, tokenizer: Tokenizer, cache_capacity: int | None = None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.config: dict[str, Any] = dict(model.config)
        self.device = torch.device(str(getattr(model, "device", "cpu")))
        max_pos = int(self.config.get("max_position_embeddings") or 0)
        self.max_positions: int | None = max_pos if max_pos > 0 else None
        if cache_capacity is not None and cache_capacity < 1:
            raise ValueError(f"cache_capacity must be >= 1, got {cache_capacity}")
        self._fixed_capacity = cache_capacity
        self._cache: Any = None
        eos = set(tokenizer.eos_token_ids)
        cfg_eos = self.config.get("eos_token_id", -1)
        if isinstance(cfg_eos, int) and cfg_eos >= 0:
            eos.add(cfg_eos)
        self.eos_token_ids: frozenset[int] = frozenset(eos)
        self.last_result: GenerationResult | None = None

    # -- cache ----------------------------------------------------------------------

    @property
    def cache(self) -> Any:
        """The KV cache (None before the first request)."""
        return self._cache

    def _cache_for(self, needed: int) -> Any:
        if self._fixed_capacity is not None:
            if needed > self._fixed_capacity:
                raise ValueError(
                    f"prompt plus max_new_tokens needs {needed} cache slots but the cache "
                    f"holds {self._fixed_capacity}"
                )
            if self._cache is None:
                self._cache = self.model.new_cache(self._fixed_capacity)
        elif self._cache is None or self._cache.capacity < needed:
            # Grow by powers of two so that a series of growing requests reallocates rarely.
            cap = max(256, 1 << (needed - 1).bit_length())
            if self.max_positions is not None:
                cap = min(cap, self.max_positions)
            self._cache = None  # free the old cache before allocating the new one
            self._cache = self.model.new_cache(max(cap, needed))
        self._cache.truncate(0)
        return self._cache

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
    ) -> GenerationResult:
        """Generate a completion of `prompt` (raw text) or `messages` (chat).

        Greedy when temperature is 0; otherwise samples from normalize(T, top_k, top_p)
        with a torch.Generator seeded with `seed` (same seed, prompt and model: same
        tokens). Stops on EOS, on any string in `stop` (cut from the text), or after
        max_new_tokens.
        """
        run = self._run(prompt, messages, max_new_tokens, temperature, top_k, top_p, seed, stop)
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
    ) -> Iterator[str]:
        """Like generate(), but yields text pieces as they are produced.

        Arguments are checked before the first piece is requested. The joined pieces equal
        the result's text; the GenerationResult is in `self.last_result` afterwards (and
        is the generator's return value).
        """
        # Validate now, not at the first next(), so that bad arguments fail at the call.
        self.check_args(max_new_tokens, temperature, top_k, top_p, seed, stop)
        return self._run(prompt, messages, max_new_tokens, temperature, top_k, top_p, seed, stop)

    @staticmethod
    def check_args(
        max_new_tokens: int,
        temperature: float,
        top_k: int,
        top_p: float,
        seed: int,
        stop: Sequence[str] | None,
    ) -> None:
        """Raise ValueError naming the first invalid generation argument."""
        check_params(temperature, top_k, top_p)
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int):
            raise ValueError(f"max_new_tokens must be an integer, got {max_new_tokens!r}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        if stop is not None and (
            isinstance(stop, str) or not all(isinstance(s, str) and s for s in stop)
        ):
            raise ValueError("stop must be a list of non-empty strings")

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
    ) -> PyGenerator[str, None, GenerationResult]:
        self.check_args(max_new_tokens, temperature, top_k, top_p, seed, stop)
        prompt_ids = self.encode_prompt(prompt, messages)
        n_prompt = len(prompt_ids)
        if self.max_positions is not None and n_prompt + max_new_tokens > self.max_positions:
            raise ValueError(
                f"prompt ({n_prompt} tokens) plus max_new_tokens ({max_new_tokens}) exceeds the "
                f"model's context of {self.max_positions} tokens"
            )
        cache = self._cache_for(n_prompt + max_new_tokens)
        rng = torch.Generator(device=self.device)
        rng.manual_seed(seed)
        decoder = StreamDecoder(
            self.tokenizer, skip_special_tokens=True, context=prompt_ids[-_STREAM_CONTEXT:]
        )
        matcher = _StopMatcher(stop or ())
        new_ids: list[int] = []
        finish = "length"
        forwards = 0
        paused = 0.0  # time spent suspended in `yield`, i.e. by the consumer

        t0 = time.perf_counter()
        tokens = torch.tensor(prompt_ids, dtype=torch.int64, device=self.device)
        last_row = torch.tensor([n_prompt - 1], dtype=torch.int64, device=self.device)
        logits = self.model.forward(cache, tokens, logit_rows=last_row)
        forwards += 1
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # kernels run async: time the prefill itself
        t_prefill = time.perf_counter()

        while True:
            if temperature == 0:
                # Same token as sample(normalize(...)) (argmax, lowest id on ties), cheaper.
                tok = torch.argmax(logits, dim=-1)
            else:
                tok = sample(normalize(logits, temperature, top_k, top_p), rng)
            tok_id = int(tok[0])
            new_ids.append(tok_id)
            if tok_id in self.eos_token_ids:
                finish = "eos"
                break
            piece, stopped = matcher.feed(decoder.push(tok_id))
            if piece:
                t_y = time.perf_counter()
                yield piece
                paused += time.perf_counter() - t_y
            if stopped:
                finish = "stop"
                break
            if len(new_ids) >= max_new_tokens:
                break
            logits = self.model.forward(cache, tok.view(1))  # int64 [1] on the device
            forwards += 1

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
        result = GenerationResult(
            text=matcher.text,
            token_ids=new_ids,
            prompt_tokens=n_prompt,
            finish_reason=finish,
            counters={
                "target_forwards": forwards,
                "prefill_seconds": prefill_s,
                "decode_seconds": decode_s,
                # The first new token comes from the prefill pass; the rest from decoding.
                "decode_tokens_per_s": (n_new - 1) / decode_s if n_new > 1 and decode_s else 0.0,
                "total_seconds": total_s,
                "tokens_per_s": n_new / total_s if total_s else 0.0,
            },
        )
        self.last_result = result
        return result


def load(
    model_dir: str | Path, device: str = "cpu", dtype: str = "auto", **kwargs: Any
) -> Generator:
    """Load a model folder (config.json, safetensors, tokenizer) into a Generator.

    Extra keyword arguments go to Generator (e.g. cache_capacity).
    """
    path = Path(model_dir).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"model folder not found: {path}")
    import mtad_ext  # imported here so tokenizer/sampling work without the native module

    model = mtad_ext.load_model(str(path), device=device, dtype=dtype)
    return Generator(model, Tokenizer(path), **kwargs)
