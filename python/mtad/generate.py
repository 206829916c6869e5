"""Generator: generation around the native engine, prompt -> tokens -> text, with any method.

The native `mtad_ext.Decoder` runs the forward passes and one step of a method per call
(AR, speculative sampling, MTAD, multi-candidate MTAD, ADED; algorithms.md); a step emits
one or more tokens. The Generator owns the tokenizer and the chat template, one reusable
Decoder, ADED's tri-gram table (trigram.py), stopping (EOS, stop strings, length: cut
inside a step's tokens), streaming and the counters. Options are one GenerateOptions
(options.py); the draft check is compat.py; loading folders is loader.py.
"""

from __future__ import annotations

import os
import time
from collections.abc import Generator as PyGenerator
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from .compat import check_draft_compatible
from .methods import DRAFT_METHODS, warn_if_greedy_mtad
from .options import DecodeOptions, GenerateOptions
from .result import GenerationResult, add_stats, counters
from .stop import StopMatcher
from .tokenizer import StreamDecoder, Tokenizer
from .trigram import TableSlot

if TYPE_CHECKING:
    from mtad_ext import TrigramTable

    from .cost_cache import CostCache
    from .options import TableArg

# Prompt ids decoded before the first new token, so that it reads as it follows the prompt
# (sentencepiece drops the leading space of the first token of a decode).
_STREAM_CONTEXT = 4


@dataclass
class _Request:
    """A checked request, ready to run: its options, prompt ids and Decoder."""

    options: GenerateOptions
    decode: DecodeOptions
    prompt_ids: list[int]
    decoder: Any


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
    costs: the models' entries in the cost file (mtad.load makes them): restored before
    the first request, saved after each one that measured something.
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
        costs: Sequence[CostCache] = (),
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
        self._tables = TableSlot(self.vocab_size)
        self._costs = list(costs)
        self._costs_restored = False
        if table is not None:
            self._tables.use(table)

    # -- ADED's tri-gram table ------------------------------------------------------

    @property
    def vocab_size(self) -> int:
        """The target's vocabulary size (a tri-gram table must be built for it)."""
        return int(self.config["vocab_size"])

    @property
    def table(self) -> TrigramTable:
        """The tri-gram table ADED requests use (an empty one is made on first access)."""
        return self._tables.table

    def save_table(self, path: str | os.PathLike[str]) -> None:
        """Write the tri-gram table, with everything it has learned, to `path` (a versioned,
        checksummed file that `table=` loads back; written under a temporary name and renamed)."""
        self._tables.save(path)

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

    # -- generation -----------------------------------------------------------------

    def generate(
        self,
        prompt: str | None = None,
        messages: Sequence[Mapping[str, Any]] | None = None,
        *,
        options: GenerateOptions | None = None,
        **changes: Any,
    ) -> GenerationResult:
        """Generate a completion of `prompt` (raw text) or `messages` (chat).

        The options are `options` (a GenerateOptions; None: the defaults) with any of its
        fields given as keyword arguments replaced, e.g. max_new_tokens=128,
        temperature=1.0, top_k=10, top_p=0.9, seed=0, stop=["\\n\\n"], method="mtad",
        gamma="auto", width=4, tau=0.5 (GenerateOptions documents them all). Greedy when
        temperature is 0; otherwise samples from normalize(T, top_k, top_p) (algorithms.md
        0) with the engine's generator seeded by `seed` (same seed, prompt, models and
        method: same tokens). Stops on EOS, on any string in `stop` (cut from the text),
        or after max_new_tokens. Raises ValueError naming an invalid option, TypeError for
        an unknown one.
        """
        run = self._run(self._request(prompt, messages, options, changes))
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
        *,
        options: GenerateOptions | None = None,
        **changes: Any,
    ) -> Iterator[str]:
        """Like generate(), but yields text pieces as they are produced (one per step).

        Arguments are checked, and the prompt encoded, before the first piece is requested.
        The joined pieces equal the result's text; the GenerationResult is in
        `self.last_result` afterwards (and is the generator's return value).
        """
        return self._run(self._request(prompt, messages, options, changes))

    def _request(
        self,
        prompt: str | None,
        messages: Sequence[Mapping[str, Any]] | None,
        options: GenerateOptions | None,
        changes: Mapping[str, Any],
    ) -> _Request:
        """Check everything and set up the Decoder: this runs at the call, so that bad
        arguments fail there, also for stream()."""
        opts = GenerateOptions.make(options, **changes)
        if opts.table is not None:
            self._tables.use(opts.table)
        decode = opts.decode_options(self.draft is not None, self._tables.given)
        # generate/stream -> _request -> here: the warning points at the caller's line.
        warn_if_greedy_mtad(decode.method, opts.temperature, stacklevel=3)
        prompt_ids = self.encode_prompt(prompt, messages)
        n_prompt = len(prompt_ids)
        if self.max_positions is not None and n_prompt + opts.max_new_tokens > self.max_positions:
            raise ValueError(
                f"prompt ({n_prompt} tokens) plus max_new_tokens ({opts.max_new_tokens}) exceeds the "
                f"model's context of {self.max_positions} tokens"
            )
        if not self._costs_restored:
            self._costs_restored = True
            for c in self._costs:
                c.restore()
        dec = self._decoder_for(decode, n_prompt + opts.max_new_tokens)
        if decode.method == "aded":
            dec.set_trigram_table(self.table)  # the decoder may be reused, the table may have changed
        return _Request(opts, decode, prompt_ids, dec)

    def _run(self, req: _Request) -> PyGenerator[str, None, GenerationResult]:
        opts, prompt_ids, dec = req.options, req.prompt_ids, req.decoder
        max_new = opts.max_new_tokens
        decoder = StreamDecoder(self.tokenizer, skip_special_tokens=True, context=prompt_ids[-_STREAM_CONTEXT:])
        matcher = StopMatcher(opts.stop or ())
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
        lookahead = req.decode.lookahead() if self._position_table is not None else 0
        positions = self._position_table or 0
        while not done:
            if lookahead and len(dec.tokens) + lookahead > positions:
                # The next draft would run past the position table: finish with AR.
                handover = add_stats(handover, dec.total_stats)
                handover["target_forwards"] += 1  # the AR decoder's prompt pass
                committed = list(dec.tokens)
                dec = self._make_decoder(replace(req.decode, method="ar"), len(prompt_ids) + max_new)
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
                if len(new_ids) >= max_new:
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
        result = GenerationResult(
            text=matcher.text,
            token_ids=new_ids,
            prompt_tokens=len(prompt_ids),
            finish_reason=finish,
            method=req.decode.method,
            counters=counters(len(new_ids), steps, prefill_s, decode_s, add_stats(handover, dec.total_stats)),
        )
        self.last_result = result
        for c in self._costs:
            c.save()
        return result
