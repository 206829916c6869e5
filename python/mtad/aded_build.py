"""Build ADED's tri-gram table (algorithms.md 4) from text, with the target's tokenizer.

The table is model-free drafting's whole "model": tri-gram counts of a corpus normalised
per context, pruned to the best 12 successors per context, stored in a versioned,
checksummed binary file that ``mtad_ext.TrigramTable.load`` reads (and a decoder adapts
and can save back).

Recipes (``mtad build-trigram --help`` shows them too):

Any text files::

    mtad build-trigram --model DIR --out table.tri notes.txt docs/*.md

Code prompts (HumanEval and the like): the Python standard library's own source, about
11 MB without its test suites (``--stdlib-tests`` adds them, ~31 MB)::

    mtad build-trigram --model DIR --out stdlib.tri --stdlib

Text the target generates itself (its own phrasing, the closest match to what it will
write): give prompts, one per line (or JSONL with a "prompt" field, or MT-Bench's
"turns"); the target answers each greedily and the answers become the corpus, which is
also kept next to the table as ``<out>.corpus.txt``::

    mtad build-trigram --model DIR --out self.tri --self-generate prompts.txt --self-generate-tokens 256

The sources combine: ``--stdlib --self-generate prompts.txt extra.txt`` builds one table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import sysconfig
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

# Text is tokenised in pieces of about this size, cut at line ends (the tokenizer is fast
# on pieces, and the progress bar moves); a file's pieces form one sequence.
CHUNK_BYTES = 1 << 20
# Standard-library folders that are not library source, left out unless asked for.
STDLIB_TEST_DIRS = frozenset({"test", "tests", "idlelib", "lib2to3", "turtledemo", "site-packages"})

EPILOG = """\
recipes:
  any text:          mtad build-trigram --out t.tri notes.txt docs/*.md
  code prompts:      mtad build-trigram --out stdlib.tri --stdlib
  the target's own:  mtad build-trigram --out self.tri --self-generate prompts.txt
  (sources combine; load with mtad_ext.TrigramTable.load(path, vocab_size=...))
"""


def _show_progress(progress: bool) -> bool:
    # A bar only for a person watching: not in CI logs or when stderr is piped.
    return progress and sys.stderr.isatty() and not os.environ.get("CI")


class _Progress:
    """A one-line byte progress bar on stderr (silent when disabled)."""

    def __init__(self, total: int, label: str, enabled: bool, unit: str = "MB", scale: float = 1e6) -> None:
        self.total, self.label, self.enabled = max(total, 1), label, enabled
        self.unit, self.scale = unit, scale
        self.done = 0
        self.t0 = time.perf_counter()
        self._last = 0.0

    def advance(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if self.enabled and (now - self._last > 0.1 or self.done >= self.total):
            self._last = now
            frac = min(1.0, self.done / self.total)
            bar = "#" * int(frac * 30)
            rate = self.done / max(now - self.t0, 1e-9) / self.scale
            sys.stderr.write(
                f"\r{self.label} [{bar:<30}] {frac * 100:5.1f}% {self.done / self.scale:.1f}/"
                f"{self.total / self.scale:.1f} {self.unit} {rate:.1f} {self.unit}/s"
            )
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
            sys.stderr.flush()


def model_vocab_size(model_dir: Path) -> int:
    """The vocabulary size of the model folder's config.json (the table must match it)."""
    cfg_path = Path(model_dir) / "config.json"
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"no config.json in {model_dir}") from None
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read {cfg_path}: {e}") from e
    vocab = cfg.get("vocab_size") if isinstance(cfg, dict) else None
    if not isinstance(vocab, int) or vocab <= 0:
        raise ValueError(f"{cfg_path} has no positive vocab_size")
    return vocab


def text_chunks(text: str, chunk_chars: int = CHUNK_BYTES) -> Iterator[str]:
    """Pieces of `text` of about chunk_chars, cut after a newline where there is one."""
    start = 0
    while start < len(text):
        end = min(len(text), start + chunk_chars)
        if end < len(text):
            cut = text.rfind("\n", start, end)
            if cut > start:
                end = cut + 1
        yield text[start:end]
        start = end


def stdlib_files(include_tests: bool = False) -> list[Path]:
    """The .py files of the running Python's standard library, sorted (tests left out)."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = []
    for f in sorted(root.rglob("*.py")):
        parts = f.relative_to(root).parts
        if "site-packages" in parts or (not include_tests and STDLIB_TEST_DIRS.intersection(parts)):
            continue
        files.append(f)
    return files


def read_prompts(path: Path) -> list[str]:
    """Prompts from a text file (one per line) or JSONL ("prompt", or "turns"[0])."""
    prompts = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        if path.suffix == ".jsonl" or line.startswith("{"):
            obj = json.loads(line)
            text = obj.get("prompt") or (obj.get("turns") or [None])[0]
            if not isinstance(text, str):
                raise ValueError(f"{path}: a JSON line has neither 'prompt' nor 'turns'")
            prompts.append(text)
        else:
            prompts.append(line)
    return prompts


def self_generated_corpus(
    model_dir: Path,
    prompts: Sequence[str],
    max_new_tokens: int = 256,
    device: str = "cpu",
    progress: bool = True,
) -> str:
    """The target's own greedy answers to `prompts` (chat template when the folder has one),
    separated by blank lines: text in the target's own phrasing for the table."""
    import torch  # noqa: F401  (loads libtorch before the extension)

    import mtad_ext

    from .tokenizer import Tokenizer

    tok = Tokenizer(model_dir)
    model = mtad_ext.load_model(str(model_dir), device=device)
    eos = tok.eos_token_ids
    answers = []
    bar = _Progress(len(prompts), "generating", _show_progress(progress), unit="prompts", scale=1.0)
    for prompt in prompts:
        if tok.chat_template is not None:
            text = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True)
            ids = tok.encode(text, add_special_tokens=False)
        else:
            ids = tok.encode(prompt)
        dec = mtad_ext.Decoder(model, method="ar", temperature=0.0, top_k=0, top_p=1.0,
                               capacity=len(ids) + max_new_tokens + 1)
        dec.start(ids)
        new: list[int] = []
        while len(new) < max_new_tokens:
            t = dec.step()[0]
            if t in eos:
                break
            new.append(t)
        answers.append(tok.decode(new, skip_special_tokens=True))
        bar.advance(1)
    bar.close()
    return "\n\n".join(answers) + "\n"


def build_table(
    model_dir: Path,
    sources: Iterable[Path | tuple[str, str]],
    max_successors: int = 12,
    progress: bool = True,
) -> Any:
    """A mtad_ext.TrigramTable from text files (or (name, text) pairs), tokenised with the
    folder's tokenizer: one sequence per source, no special tokens."""
    import torch

    import mtad_ext

    from .tokenizer import Tokenizer

    tok = Tokenizer(model_dir)
    table = mtad_ext.TrigramTable(model_vocab_size(model_dir))
    items = list(sources)
    sizes = [p.stat().st_size if isinstance(p, Path) else len(p[1].encode()) for p in items]
    bar = _Progress(sum(sizes), "tokenising", _show_progress(progress))
    for item in items:
        if isinstance(item, Path):
            try:
                text = item.read_text(encoding="utf-8", errors="replace")
            except OSError as e:
                raise OSError(f"cannot read {item}: {e.strerror or e}") from e
        else:
            text = item[1]
        ids: list[int] = []
        for piece in text_chunks(text):
            ids.extend(tok.encode(piece, add_special_tokens=False))
            bar.advance(len(piece.encode("utf-8", errors="replace")))
        if len(ids) >= 3:
            table.add_sequence(torch.tensor(ids, dtype=torch.int64))
    bar.close()
    table.finalize(max_successors)
    return table


# ---- the `mtad build-trigram` command ---------------------------------------------------


def add_build_trigram_parser(sub: Any) -> argparse.ArgumentParser:
    """Registers `build-trigram` on the `mtad` command's subparsers."""
    p = sub.add_parser(
        "build-trigram",
        help="build ADED's tri-gram table from text files",
        description="Tokenise text with the target's tokenizer and write ADED's tri-gram table "
        "(counts normalised per context, best successors kept, versioned binary file with a checksum).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("files", metavar="TEXT_FILES", nargs="*", type=Path, help="text files (UTF-8)")
    p.add_argument("--model", metavar="DIR", type=Path, default=None,
                   help="HF model folder whose tokenizer and vocabulary the table is for "
                   "(default: SmolLM2-135M-Instruct, fetched if missing)")
    p.add_argument("--out", metavar="FILE", type=Path, required=True, help="table file to write")
    p.add_argument("--max-successors", type=int, default=12, metavar="K",
                   help="successors kept per context; 0 keeps all (default: 12)")
    p.add_argument("--stdlib", action="store_true",
                   help="add the Python standard library's source (a corpus for code prompts)")
    p.add_argument("--stdlib-tests", action="store_true", help="with --stdlib: include its test suites too")
    p.add_argument("--self-generate", metavar="PROMPTS", type=Path, default=None,
                   help="add the target's own greedy answers to these prompts (one per line, or JSONL)")
    p.add_argument("--self-generate-tokens", type=int, default=256, metavar="N",
                   help="tokens per self-generated answer (default: 256)")
    p.add_argument("--device", default="cpu", help="device for --self-generate (default: cpu)")
    return p


def run_build_trigram(args: argparse.Namespace) -> int:
    """Runs `mtad build-trigram`; returns the exit status."""
    from .fetch import default_model_dir, fetch_default, is_complete

    if args.max_successors < 0:
        raise ValueError("--max-successors must be >= 0")
    if args.self_generate_tokens < 1:
        raise ValueError("--self-generate-tokens must be >= 1")
    sources: list[Path | tuple[str, str]] = []
    for f in args.files:
        if not f.is_file():
            raise FileNotFoundError(f"text file not found: {f}")
        sources.append(f)
    if args.stdlib:
        sources.extend(stdlib_files(include_tests=args.stdlib_tests))
    prompts = read_prompts(args.self_generate) if args.self_generate is not None else []
    if not sources and not prompts:
        raise ValueError("no text: give TEXT_FILES, --stdlib or --self-generate")
    if args.model is not None:
        model_dir = args.model.expanduser()
        if not model_dir.is_dir():
            raise FileNotFoundError(f"model folder not found: {model_dir}")
    else:
        default = default_model_dir()
        model_dir = default if is_complete(default) else fetch_default()

    t0 = time.perf_counter()
    if prompts:
        corpus = self_generated_corpus(model_dir, prompts, args.self_generate_tokens, args.device)
        corpus_path = args.out.with_name(args.out.name + ".corpus.txt")
        corpus_path.write_text(corpus, encoding="utf-8")
        sources.append(("self-generated", corpus))
    table = build_table(model_dir, sources, args.max_successors)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.save(str(args.out))
    print(
        f"mtad: wrote {args.out}: {table.num_contexts} contexts, {table.num_entries} entries, "
        f"{args.out.stat().st_size / 1e6:.1f} MB, from {len(sources)} source(s) in {time.perf_counter() - t0:.1f} s",
        file=sys.stderr,
    )
    return 0
