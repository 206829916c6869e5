"""Tokenizer, chat template and incremental detokenisation for a HF model folder.

No transformers at run time: tokenizer.json goes through the `tokenizers` library
(tokenizer.model through sentencepiece when there is no tokenizer.json), special tokens
come from the folder's JSON files, and the chat template is rendered with jinja2 in the
same environment transformers builds, so prompts are token-for-token what HF produces.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

# Names transformers passes to chat templates (its special_tokens_map), in its order.
SPECIAL_TOKEN_NAMES = (
    "bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token",
)  # fmt: skip

REPLACEMENT_CHAR = "\ufffd"


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read {path}: {e}") from e
    return data if isinstance(data, dict) else {}


def _token_content(value: Any) -> str | None:
    # tokenizer_config.json stores a special token as a string or as a serialised AddedToken.
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return value["content"]
    return None


def _ids(value: Any) -> list[int]:
    # config.json / generation_config.json hold an id, a list of ids, or null.
    if isinstance(value, bool):
        return []
    if isinstance(value, int):
        return [value] if value >= 0 else []
    if isinstance(value, list):
        return [v for v in value if isinstance(v, int) and not isinstance(v, bool) and v >= 0]
    return []


# ---------------------------------------------------------------------------------------
# Chat templates


@lru_cache(maxsize=16)
def _compile_template(source: str) -> Any:
    """Compile a chat template in the environment transformers uses (sandboxed)."""
    try:
        import jinja2
        from jinja2 import nodes
        from jinja2.ext import Extension, loopcontrols
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError as e:
        raise ImportError("chat templates need jinja2: pip install 'jinja2>=3.1'") from e

    class GenerationTag(Extension):
        # transformers' {% generation %} marks assistant spans for training masks; when
        # only rendering, the block is its body.
        tags = {"generation"}

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller: Any) -> str:
            return str(caller())

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(
        x: Any,
        ensure_ascii: bool = False,
        indent: int | None = None,
        separators: tuple[str, str] | None = None,
        sort_keys: bool = False,
    ) -> str:
        # Jinja's own tojson escapes HTML characters; templates expect plain JSON.
        return json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    def strftime_now(fmt: str) -> str:
        return datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    try:
        return env.from_string(source)
    except RecursionError:  # jinja2's recursive-descent parser on a deeply nested expression (fuzz finding)
        raise jinja2.exceptions.TemplateError("the chat template nests too deeply to parse") from None


def _find_chat_template(model_dir: Path, tok_cfg: Mapping[str, Any]) -> str | None:
    # transformers >= 4.50 saves the template beside the config as chat_template.jinja and
    # prefers it; older folders keep it in tokenizer_config.json (a string, or a list of
    # named templates of which "default" is used).
    jinja_file = model_dir / "chat_template.jinja"
    if jinja_file.is_file():
        return jinja_file.read_text(encoding="utf-8")
    tmpl = tok_cfg.get("chat_template")
    if tmpl is None:
        tmpl = _read_json(model_dir / "chat_template.json").get("chat_template")
    if isinstance(tmpl, list):
        named = {t.get("name"): t.get("template") for t in tmpl if isinstance(t, dict)}
        tmpl = named.get("default")
    return tmpl if isinstance(tmpl, str) else None


# ---------------------------------------------------------------------------------------
# Tokenizer


class Tokenizer:
    """The tokenizer of one model folder.

    Attributes: bos_token_id / eos_token_id / pad_token_id (None when absent), eos_token_ids (every id
    that ends generation: the tokenizer's EOS plus config.json's and
    generation_config.json's eos_token_id), special_tokens (name -> token string, as
    transformers' special_tokens_map), special_vocab (every special token -> id),
    chat_template (None when the folder has none).
    """

    def __init__(self, model_dir: str | Path) -> None:
        self.model_dir = Path(model_dir)
        if not self.model_dir.is_dir():
            raise FileNotFoundError(f"model folder not found: {self.model_dir}")
        tok_cfg = _read_json(self.model_dir / "tokenizer_config.json")
        special_map = _read_json(self.model_dir / "special_tokens_map.json")
        model_cfg = _read_json(self.model_dir / "config.json")
        gen_cfg = _read_json(self.model_dir / "generation_config.json")

        self._hf: Any = None
        self._sp: Any = None
        self._vocab_size: int | None = None
        tok_json = self.model_dir / "tokenizer.json"
        sp_model = self.model_dir / "tokenizer.model"
        if tok_json.is_file():
            from tokenizers import Tokenizer as HFTokenizer

            try:
                self._hf = HFTokenizer.from_file(str(tok_json))
            except Exception as e:  # the Rust side raises a plain Exception
                raise ValueError(f"cannot load {tok_json}: {e}") from e
        elif sp_model.is_file():
            import sentencepiece as spm

            self._sp = spm.SentencePieceProcessor()
            if not self._sp.Load(str(sp_model)):
                raise ValueError(f"cannot load {sp_model}")
        else:
            raise FileNotFoundError(f"no tokenizer.json or tokenizer.model in {self.model_dir}")

        # Special tokens: tokenizer_config.json first, special_tokens_map.json as fallback.
        self.special_tokens: dict[str, str] = {}
        for name in SPECIAL_TOKEN_NAMES:
            tok = _token_content(tok_cfg.get(name))
            if tok is None:
                tok = _token_content(special_map.get(name))
            if tok is not None:
                self.special_tokens[name] = tok

        self.bos_token_id = self._special_id("bos_token", model_cfg.get("bos_token_id"))
        self.eos_token_id = self._special_id("eos_token", model_cfg.get("eos_token_id"))
        eos = [] if self.eos_token_id is None else [self.eos_token_id]
        eos += _ids(model_cfg.get("eos_token_id")) + _ids(gen_cfg.get("eos_token_id"))
        self.eos_token_ids: frozenset[int] = frozenset(eos)
        self._pad_token_id = self._special_id("pad_token", model_cfg.get("pad_token_id"))

        # Only used by the sentencepiece path: tokenizer.json carries its own post-processor.
        self.add_bos_token = bool(tok_cfg.get("add_bos_token", True))
        self.add_eos_token = bool(tok_cfg.get("add_eos_token", False))
        # transformers applies this clean-up in decode() when the folder asks for it.
        self.clean_up_tokenization_spaces = bool(tok_cfg.get("clean_up_tokenization_spaces", False))
        self.chat_template = _find_chat_template(self.model_dir, tok_cfg)

        self._special_ids: frozenset[int] = frozenset(self._collect_special_ids(tok_cfg))

    # -- ids ------------------------------------------------------------------------

    def _special_id(self, name: str, fallback: Any) -> int | None:
        tok = self.special_tokens.get(name)
        if tok is not None:
            tid = self.token_to_id(tok)
            if tid is not None:
                return tid
        ids = _ids(fallback)
        return ids[0] if ids else None

    def _collect_special_ids(self, tok_cfg: Mapping[str, Any]) -> list[int]:
        ids = [self.token_to_id(t) for t in self.special_tokens.values()]
        if self._hf is not None:
            ids += [i for i, t in self._hf.get_added_tokens_decoder().items() if t.special]
        for key, val in (tok_cfg.get("added_tokens_decoder") or {}).items():
            if isinstance(val, dict) and val.get("special") and str(key).isdigit():
                ids.append(int(key))
        return [i for i in ids if i is not None]

    @property
    def vocab_size(self) -> int:
        """Number of ids, added tokens included: one past the largest id, so every id that
        encode() returns is below it. A tokenizer.json may number its vocabulary sparsely
        (ids with gaps, an added token far past the model's tokens); the tokenizers library's
        get_vocab_size counts tokens instead, which is smaller there (found by fuzzing)."""
        if self._vocab_size is None:
            if self._hf is not None:
                ids = self._hf.get_vocab(with_added_tokens=True).values()
                count = int(self._hf.get_vocab_size(with_added_tokens=True))
                self._vocab_size = max(count, max(ids, default=-1) + 1)
            else:
                self._vocab_size = int(self._sp.GetPieceSize())
        return self._vocab_size

    @property
    def pad_token_id(self) -> int | None:
        """Id of the pad token (tokenizer files first, config.json's pad_token_id second)."""
        return self._pad_token_id

    @property
    def special_vocab(self) -> dict[str, int]:
        """Every special token (named ones and added tokens marked special) -> its id."""
        out: dict[str, int] = {}
        for i in sorted(self._special_ids):
            tok = self.id_to_token(i)
            if tok is not None:
                out[tok] = i
        return out

    def get_vocab(self) -> dict[str, int]:
        """The whole vocabulary, added tokens included: token string -> id."""
        if self._hf is not None:
            return dict(self._hf.get_vocab(with_added_tokens=True))
        return {str(self._sp.IdToPiece(i)): i for i in range(self._sp.GetPieceSize())}

    @property
    def bos_token(self) -> str | None:
        return self.special_tokens.get("bos_token")

    @property
    def eos_token(self) -> str | None:
        return self.special_tokens.get("eos_token")

    def token_to_id(self, token: str) -> int | None:
        if self._hf is not None:
            tid = self._hf.token_to_id(token)
            return None if tid is None else int(tid)
        tid = int(self._sp.PieceToId(token))
        # sentencepiece maps unknown pieces to unk; only an exact match counts.
        return tid if self._sp.IdToPiece(tid) == token else None

    def id_to_token(self, token_id: int) -> str | None:
        if self._hf is not None:
            return self._hf.id_to_token(token_id)
        if 0 <= token_id < self._sp.GetPieceSize():
            return str(self._sp.IdToPiece(token_id))
        return None

    def is_special(self, token_id: int) -> bool:
        return token_id in self._special_ids

    # -- text <-> ids ---------------------------------------------------------------

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        """Token ids of `text`; add_special_tokens adds BOS/EOS as the folder configures."""
        if self._hf is not None:
            try:
                return list(self._hf.encode(text, add_special_tokens=add_special_tokens).ids)
            except Exception as e:  # the Rust side raises a plain Exception (e.g. no unk token)
                raise ValueError(f"{self.model_dir / 'tokenizer.json'} cannot encode {text[:40]!r}: {e}") from e
        ids: list[int] = list(self._sp.EncodeAsIds(text))
        if add_special_tokens:
            if self.add_bos_token and self.bos_token_id is not None:
                ids.insert(0, self.bos_token_id)
            if self.add_eos_token and self.eos_token_id is not None:
                ids.append(self.eos_token_id)
        return ids

    def decode_raw(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        """Decode without transformers' tokenization-space clean-up (used for streaming)."""
        ids = [int(i) for i in ids]
        if self._hf is not None:
            return str(self._hf.decode(ids, skip_special_tokens=skip_special_tokens))
        if skip_special_tokens:
            ids = [i for i in ids if i not in self._special_ids]
        return str(self._sp.DecodeIds(ids))

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        """Text of `ids`, as transformers' tokenizer.decode gives it."""
        text = self.decode_raw(ids, skip_special_tokens)
        return _clean_up_tokenization(text) if self.clean_up_tokenization_spaces else text

    # -- chat -----------------------------------------------------------------------

    def apply_chat_template(
        self,
        messages: Sequence[Mapping[str, Any]],
        add_generation_prompt: bool = True,
        chat_template: str | None = None,
        **kwargs: Any,
    ) -> str:
        """Render `messages` ([{"role": ..., "content": ...}]) with the folder's template.

        Same text as transformers' tokenizer.apply_chat_template(..., tokenize=False);
        tokenise the result with add_special_tokens=False, as transformers does.
        Extra keyword arguments become template variables (e.g. tools=...).
        """
        source = chat_template or self.chat_template
        if source is None:
            raise ValueError(f"{self.model_dir} has no chat template; send a raw prompt instead")
        if isinstance(messages, (str, bytes)) or not isinstance(messages, Iterable):
            raise ValueError("messages must be a list of {'role': ..., 'content': ...} dicts")
        chat: list[dict[str, Any]] = []
        for m in messages:
            if not isinstance(m, Mapping):
                raise ValueError(f"each message must be a dict, got {m!r}")
            # Like transformers: keys whose value is None are dropped (APIs send content=None).
            chat.append({k: v for k, v in m.items() if v is not None})
        variables: dict[str, Any] = {"tools": None, "documents": None}
        variables.update(self.special_tokens)
        variables.update(kwargs)
        variables["messages"] = chat
        variables["add_generation_prompt"] = add_generation_prompt
        import jinja2

        template = _compile_template(source)
        try:
            return str(template.render(**variables))
        except jinja2.exceptions.TemplateError:
            raise  # the template's own raise_exception, or a syntax / security error
        except Exception as e:  # the template's code failed on these messages (TypeError, ...)
            raise ValueError(f"the chat template of {self.model_dir} failed: {type(e).__name__}: {e}") from e

    def __repr__(self) -> str:
        kind = "tokenizers" if self._hf is not None else "sentencepiece"
        return f"Tokenizer({str(self.model_dir)!r}, {kind}, vocab={self.vocab_size})"


def _clean_up_tokenization(text: str) -> str:
    # transformers' PreTrainedTokenizerBase.clean_up_tokenization.
    return (
        text.replace(" .", ".")
        .replace(" ?", "?")
        .replace(" !", "!")
        .replace(" ,", ",")
        .replace(" ' ", "'")
        .replace(" n't", "n't")
        .replace(" 'm", "'m")
        .replace(" 's", "'s")
        .replace(" 've", "'ve")
        .replace(" 're", "'re")
    )


# ---------------------------------------------------------------------------------------
# Streaming


class StreamDecoder:
    """Incremental detokenisation: push ids one at a time, get only new complete text.

    A token may end inside a multi-byte UTF-8 character (byte-level BPE splits emoji and
    CJK across tokens); such text decodes with a trailing U+FFFD, so it is held back until
    a later token completes it (or flush() gives up). Decoding a short window that starts
    one token before the new text keeps sentencepiece's leading-space handling right.

    `context` ids (e.g. the end of the prompt) are pushed silently first so that the first
    generated token is decoded as it reads after the prompt.
    """

    def __init__(
        self,
        tokenizer: Tokenizer,
        skip_special_tokens: bool = False,
        context: Sequence[int] = (),
    ) -> None:
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self.ids: list[int] = [int(i) for i in context]
        # ids[prefix:read] was already emitted (and decodes cleanly); ids[read:] is pending.
        self._prefix = max(0, len(self.ids) - 1)
        self._read = len(self.ids)

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode_raw(ids, self.skip_special_tokens)

    def push(self, token_id: int) -> str:
        """Add one id; return the text it completes ('' while a character is unfinished)."""
        self.ids.append(int(token_id))
        prefix_text = self._decode(self.ids[self._prefix : self._read])
        new_text = self._decode(self.ids[self._prefix :])
        if len(new_text) > len(prefix_text) and not new_text.endswith(REPLACEMENT_CHAR):
            piece = new_text[len(prefix_text) :]
            self._prefix = self._read
            self._read = len(self.ids)
            return piece
        return ""

    def flush(self) -> str:
        """Whatever is still held back (an unfinished character decodes as U+FFFD)."""
        if self._read >= len(self.ids):
            return ""
        prefix_text = self._decode(self.ids[self._prefix : self._read])
        new_text = self._decode(self.ids[self._prefix :])
        self._prefix = self._read
        self._read = len(self.ids)
        return new_text[len(prefix_text) :]
