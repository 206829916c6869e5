"""Builds the CUDA emulation library: every csrc/ops/cuda/*.cu (rewritten by preprocess.py)
compiled by the host C++ compiler against include/cuda_emu, plus runtime.cpp and harness.cpp,
linked into one shared library that tests load with ctypes.

Objects and libraries are cached by content (sources, headers, flags, compiler) under
$MTAD_EMU_CACHE, else $MTAD_CACHE/cuda_emu, else ~/.cache/mtad/cuda_emu, so a second build
of the same tree links nothing new, and a tree with one edited kernel recompiles one file.
Entries unused for two weeks are pruned when a new library is linked.

Usage: python tools/cuda_emu/build.py [--sanitize] [--src CSRC]  (prints the library path)
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
INCLUDE = HERE / "include"

_spec = importlib.util.spec_from_file_location("mtad_cuda_emu_preprocess", HERE / "preprocess.py")
assert _spec is not None and _spec.loader is not None
preprocess = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(preprocess)


class BuildError(RuntimeError):
    """The emulation library failed to compile or link; the message holds the compiler output."""


def cache_root() -> Path:
    if os.environ.get("MTAD_EMU_CACHE"):
        return Path(os.environ["MTAD_EMU_CACHE"])
    base = Path(os.environ["MTAD_CACHE"]) if os.environ.get("MTAD_CACHE") else Path.home() / ".cache" / "mtad"
    return base / "cuda_emu"


def compiler() -> str:
    return os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or "c++"


def flags(sanitize: bool) -> list[str]:
    f = ["-std=c++17", "-fPIC", "-w", "-fno-strict-aliasing"]
    # nvcc contracts a * b + c into FMAs by default; so does the host compiler here, and the
    # kernels that must not contract say so with __fmul_rn & co.
    f += ["-ffp-contract=fast"]
    if platform.machine() in ("x86_64", "AMD64"):
        f += ["-march=native"] if os.environ.get("MTAD_NATIVE") != "0" else ["-mavx2", "-mfma"]
    if sanitize:
        f += ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    else:
        f += ["-O2"]
    return f


def _digest(*parts: bytes | str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else p.encode())
        h.update(b"\0")
    return h.hexdigest()[:24]


def _compiler_id(cxx: str) -> str:
    try:
        return subprocess.run([cxx, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as e:
        raise BuildError(f"cannot run the C++ compiler {cxx!r}: {e}") from e


def build(src: Path | None = None, sanitize: bool = False, jobs: int | None = None) -> Path:
    """The library for the CUDA sources under src (a csrc-like tree: src/ops/cuda/*.cu),
    built if not cached; returns its path."""
    src = (src or REPO / "csrc").resolve()
    cuda_dir = src / "ops" / "cuda"
    sources = sorted(cuda_dir.glob("*.cu"))
    if not sources:
        raise BuildError(f"no .cu files under {cuda_dir}")
    cxx = compiler()
    fl = flags(sanitize)
    root = cache_root()
    env_key = _digest(cxx, _compiler_id(cxx), *fl)

    with _locked(root):
        tree = root / "src" / _digest(env_key, *(p.read_bytes() for p in cuda_dir.iterdir() if p.is_file()))
        if not tree.exists():
            _write_rewritten(cuda_dir, src, tree)
        includes = [f"-I{tree}", f"-I{src}", f"-I{INCLUDE}"]
        units = [(tree / "ops" / "cuda" / (p.name + ".cpp")) for p in sources]
        units += [HERE / "runtime.cpp", HERE / "harness.cpp"]
        roots = [tree, src, INCLUDE]
        objects = [root / "obj" / f"{u.stem}-{_digest(env_key, *_closure(u, roots))}.o" for u in units]
        lib = root / "lib" / f"libmtad_cuda_emu-{_digest(*(o.name for o in objects))}.so"
        if lib.exists():
            _touch(lib, *objects, tree)
            return lib
        (root / "obj").mkdir(parents=True, exist_ok=True)
        todo = [(u, o) for u, o in zip(units, objects, strict=True) if not o.exists()]

        def compile_one(item: tuple[Path, Path]) -> None:
            unit, obj = item
            tmp = obj.with_suffix(f".{os.getpid()}.tmp")
            r = subprocess.run([cxx, *fl, *includes, "-c", str(unit), "-o", str(tmp)], capture_output=True, text=True)
            if r.returncode != 0:
                raise BuildError(f"compiling {unit} failed:\n{r.stdout}{r.stderr}")
            tmp.replace(obj)

        n = jobs or int(os.environ.get("MTAD_BUILD_JOBS", "0") or 0) or min(4, os.cpu_count() or 2)
        with ThreadPoolExecutor(max_workers=n) as pool:
            list(pool.map(compile_one, todo))
        lib.parent.mkdir(parents=True, exist_ok=True)
        tmp = lib.with_suffix(f".{os.getpid()}.tmp")
        link = [cxx, *fl, "-shared", "-Wl,-Bsymbolic", "-o", str(tmp), *map(str, objects)]
        r = subprocess.run(link, capture_output=True, text=True)
        if r.returncode != 0:
            raise BuildError(f"linking {lib.name} failed:\n{r.stdout}{r.stderr}")
        tmp.replace(lib)
        _touch(*objects, tree)
        _prune(root)
        return lib


KEEP_DAYS = 14


def _touch(*paths: Path) -> None:
    for p in paths:
        if p.exists():
            os.utime(p)


def _prune(root: Path) -> None:
    """Drops cached sources, objects and libraries unused for KEEP_DAYS (every edit of a
    kernel, and every fault variant of the tests, adds some)."""
    limit = time.time() - KEEP_DAYS * 86400
    for sub in ("src", "obj", "lib"):
        for p in (root / sub).glob("*") if (root / sub).is_dir() else []:
            if p.stat().st_mtime < limit:
                shutil.rmtree(p) if p.is_dir() else p.unlink(missing_ok=True)


INCLUDE_LINE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)


def _closure(unit: Path, roots: list[Path]) -> list[bytes]:
    """The unit's text and that of every header it includes from our include roots
    (recursively, keyed by the name it is included as, so that a copy of the tree elsewhere
    hits the same objects; system headers are left to the compiler version in the key)."""
    seen: dict[Path, bytes] = {}
    keys = [unit.read_bytes()]
    todo = [unit]
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen[p] = p.read_bytes()
        for name in INCLUDE_LINE.findall(seen[p].decode("utf-8", "replace")):
            for base in [p.parent, *roots]:
                q = (base / name).resolve()
                if q.is_file():
                    if q not in seen:
                        keys.append(name.encode() + b"\0" + q.read_bytes())
                    todo.append(q)
                    break
    return sorted(keys)


def _write_rewritten(cuda_dir: Path, src: Path, tree: Path) -> None:
    """The rewritten copy of every file of ops/cuda: headers too, so that a .cu includes
    the rewritten .cuh (the tree comes first on the include path)."""
    out = tree.with_name(tree.name + f".{os.getpid()}.tmp")
    shutil.rmtree(out, ignore_errors=True)
    (out / "ops" / "cuda").mkdir(parents=True)
    for p in sorted(cuda_dir.iterdir()):
        if not p.is_file() or p.suffix not in (".cu", ".cuh", ".h"):
            continue
        display = str(p.relative_to(src.parent)) if src.parent in p.parents else str(p)
        text = preprocess.rewrite(p.read_text(encoding="utf-8"), display)
        name = p.name + ".cpp" if p.suffix == ".cu" else p.name
        (out / "ops" / "cuda" / name).write_text(text, encoding="utf-8")
    out.replace(tree)


class _locked:
    """An exclusive lock on the cache (parallel test sessions build one at a time)."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self.path = root / "lock"

    def __enter__(self) -> None:
        self.f = open(self.path, "w")  # noqa: SIM115 - held until __exit__
        fcntl.flock(self.f, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.f, fcntl.LOCK_UN)
        self.f.close()


def main() -> None:
    ap = argparse.ArgumentParser(description="Build the CUDA emulation library (prints its path).")
    ap.add_argument("--sanitize", action="store_true", help="with AddressSanitizer and UBSan")
    ap.add_argument("--src", type=Path, help="the csrc tree to take ops/cuda from (default: the repository's)")
    a = ap.parse_args()
    try:
        print(build(a.src, a.sanitize))
    except BuildError as e:
        sys.exit(str(e))


if __name__ == "__main__":
    main()
