"""Rewrites CUDA sources into C++ that the emulation (include/cuda_emu/emu.h) compiles.

Three constructs have no plain C++ spelling and are rewritten; everything else is left as
it is, and line numbers are kept, so that errors and sanitizer reports name the original
file and line:

- ``kernel<<<grid, block, smem, stream>>>(args)`` becomes
  ``::cuda_emu::launch({"kernel", __FILE__, __LINE__}, kernel, grid, block, smem, stream)(args)``;
- ``__shared__ T a, b[N];`` becomes one block-wide buffer per variable (``static char`` tag +
  ``auto& a = ::cuda_emu::shared_var<T>(...)``), ``extern __shared__ T a[];`` a pointer to the
  launch's dynamic shared memory;
- ``__launch_bounds__(n)`` is removed from the signature and checked by a call at the top
  of the kernel body.

Usage: preprocess.py SRC OUT [--display NAME] (NAME: the path errors should show).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

IDENT = re.compile(r"[A-Za-z_]\w*")


def code_mask(src: str) -> str:
    """src with comments and string / char literal contents blanked (same length and
    newlines), so that searches see only code."""
    out = list(src)
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            for k in range(i, j):
                out[k] = " "
            i = j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j + 2
            for k in range(i, j):
                if out[k] != "\n":
                    out[k] = " "
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and src[j] != c:
                j += 2 if src[j] == "\\" else 1
            for k in range(i + 1, min(j, n)):
                if out[k] != "\n":
                    out[k] = " "
            i = j + 1
        else:
            i += 1
    return "".join(out)


def match_forward(code: str, i: int, open_: str, close: str) -> int:
    """Index just past the bracket that closes code[i] (== open_)."""
    depth = 0
    for j in range(i, len(code)):
        if code[j] == open_:
            depth += 1
        elif code[j] == close:
            depth -= 1
            if depth == 0:
                return j + 1
    raise ValueError(f"unbalanced {open_!r} at offset {i}")


def callee_start(code: str, end: int) -> int:
    """Start of the kernel expression ending before `end` (an id-expression such as
    ns::name<T, 4>), scanning backwards."""
    i = end
    while i > 0 and code[i - 1].isspace():
        i -= 1
    while True:
        if i > 0 and code[i - 1] == ">":  # template arguments: back to the matching '<'
            depth = 0
            j = i - 1
            while j >= 0:
                if code[j] == ">":
                    depth += 1
                elif code[j] == "<":
                    depth -= 1
                    if depth == 0:
                        break
                j -= 1
            i = j
            while i > 0 and code[i - 1].isspace():
                i -= 1
        j = i
        while j > 0 and (code[j - 1].isalnum() or code[j - 1] == "_"):
            j -= 1
        if j == i:
            raise ValueError(f"no kernel name before '<<<' at offset {end}")
        i = j
        k = i
        while k > 0 and code[k - 1].isspace():
            k -= 1
        if code[k - 2:k] == "::":
            i = k - 2
            while i > 0 and code[i - 1].isspace():
                i -= 1
            if i == 0 or not (code[i - 1].isalnum() or code[i - 1] in "_>"):
                return i  # leading ::
            continue
        return i


def blank(text: str) -> str:
    """Spaces in place of text, newlines kept (so that later lines keep their numbers)."""
    return "".join(c if c == "\n" else " " for c in text)


def one_line(text: str) -> str:
    return " ".join(text.split())


def line_of(src: str, pos: int) -> int:
    return src.count("\n", 0, pos) + 1


class Rewriter:
    def __init__(self, src: str) -> None:
        self.src = src
        self.code = code_mask(src)
        self.edits: list[tuple[int, int, str]] = []  # (start, end, replacement)

    def apply(self) -> str:
        out, pos = [], 0
        for start, end, text in sorted(self.edits):
            if start < pos:
                raise ValueError(f"overlapping rewrites at offset {start}")
            out.append(self.src[pos:start])
            out.append(text)
            pos = end
        out.append(self.src[pos:])
        return "".join(out)

    def launches(self) -> None:
        code = self.code
        for m in re.finditer(r"<<<", code):
            lo = m.start()
            start = callee_start(code, lo)
            depth, j = 0, m.end()
            while True:  # the '>>>' closing the configuration, outside any brackets
                if j >= len(code):
                    raise ValueError(f"no '>>>' after '<<<' on line {line_of(self.src, lo)}")
                if code[j] in "([{":
                    depth += 1
                elif code[j] in ")]}":
                    depth -= 1
                elif depth == 0 and code.startswith(">>>", j):
                    break
                j += 1
            hi = j
            callee = self.src[start:lo]
            name = one_line(callee).replace('"', '\\"')
            self.edits.append(
                (start, lo, f'::cuda_emu::launch(::cuda_emu::Site{{"{name}", __FILE__, __LINE__}}, {callee}, ')
            )
            self.edits.append((hi, hi + 3, ")"))
            self.edits.append((lo, m.end(), ""))

    def shared(self) -> None:
        code = self.code
        for m in re.finditer(r"\b__shared__\b", code):
            end = code.index(";", m.end())
            stmt_start = m.start()
            before = code[:m.start()].rstrip()
            is_extern = before.endswith("extern")
            if is_extern:
                stmt_start = before.rfind("extern")
            body = code[m.end():end]
            line = line_of(self.src, m.start())
            newlines = "\n" * self.src.count("\n", stmt_start, end + 1)
            align = re.match(r"\s*__align__\s*\(([^)]*)\)", body)
            if align:
                body = body[align.end():]
            parts = split_top(body)
            first = parts[0]
            bracket = first.find("[")
            head = first if bracket < 0 else first[:bracket]
            names = list(IDENT.finditer(head))
            if not names:
                raise ValueError(f"cannot parse the __shared__ declaration on line {line}")
            type_ = one_line(head[: names[-1].start()])
            out = []
            for k, part in enumerate(parts):
                decl = part if k else part[names[-1].start():]
                nm = IDENT.search(decl)
                if nm is None:
                    raise ValueError(f"cannot parse the __shared__ declaration on line {line}")
                name = nm.group(0)
                dims = one_line(decl[nm.end():])
                if is_extern:
                    if dims.replace(" ", "") != "[]":
                        raise ValueError(f"extern __shared__ {name} on line {line} must be an unsized array")
                    out.append(f"{type_}* {name} = ::cuda_emu::dynamic_shared_as<{type_}>(__FILE__, {line});")
                else:
                    tag = f"cuda_emu_tag_{name}"
                    out.append(
                        f"static char {tag}; auto& {name} = ::cuda_emu::shared_var<{type_} {dims}>("
                        f'&{tag}, __FILE__, {line}, "{name}");'
                    )
            self.edits.append((stmt_start, end + 1, " ".join(out) + newlines))

    def launch_bounds(self) -> None:
        code = self.code
        for m in re.finditer(r"\b__launch_bounds__\s*\(", code):
            args_end = match_forward(code, m.end() - 1, "(", ")")
            args = one_line(self.src[m.end():args_end - 1])
            params = code.index("(", args_end)
            body = code.index("{", match_forward(code, params, "(", ")"))
            line = line_of(self.src, m.start())
            self.edits.append((m.start(), args_end, blank(self.src[m.start():args_end])))
            self.edits.append((body + 1, body + 1, f" ::cuda_emu::launch_bounds(__FILE__, {line}, {args});"))


def split_top(text: str) -> list[str]:
    """text split at commas outside brackets."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(text):
        if c in "([{<":
            depth += 1
        elif c in ")]}>":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def rewrite(src: str, display: str) -> str:
    r = Rewriter(src)
    r.launches()
    r.shared()
    r.launch_bounds()
    return f'#include "cuda_emu/prelude.h"\n#line 1 "{display}"\n' + r.apply()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("src", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--display", help="the file name errors should show (default: src)")
    a = ap.parse_args()
    a.out.write_text(rewrite(a.src.read_text(encoding="utf-8"), a.display or str(a.src)), encoding="utf-8")


if __name__ == "__main__":
    main()
