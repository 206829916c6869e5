"""Builds mtad_ext._C by driving CMake (CMakeLists.txt is the one build graph).

CUDA kernels are built when PyTorch has CUDA and nvcc is found, of the same CUDA version;
MTAD_CUDA=0 forbids them, MTAD_CUDA=1 demands them: the build then stops with a message
when nvcc is missing, PyTorch has no CUDA, or their CUDA versions differ (cuda_refusal;
cmake/cuda_check.cmake says the same to a direct CMake user). The build folder is
build/<python tag> (MTAD_BUILD_DIR overrides it, e.g. a CUDA build beside the CPU one) so
that rebuilds are incremental; its CMake cache is dropped when it was made with tools that
are gone or differ from this build's (pip's isolated build environments come and go), so
it is never reused against them.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


def _json_include() -> str:
    spec = importlib.util.find_spec("nlohmann_json")
    if spec is None or spec.origin is None:
        return ""
    return str(Path(spec.origin).parent / "include")


def find_nvcc() -> str | None:
    """The nvcc a CUDA build uses: $CUDACXX, else nvcc on PATH, else /usr/local/cuda's."""
    if os.environ.get("CUDACXX"):
        return os.environ["CUDACXX"]
    found = shutil.which("nvcc")
    if found:
        return found
    default = Path("/usr/local/cuda/bin/nvcc")
    return str(default) if default.exists() else None


def nvcc_version(nvcc: str) -> str | None:
    """'13.0' from `nvcc --version`, or None when it cannot be run or read."""
    try:
        out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    m = re.search(r"release (\d+\.\d+)", out)
    return m.group(1) if m else None


def cuda_refusal(nvcc: str | None, version: str | None, torch_cuda: str | None) -> str | None:
    """Why a CUDA build cannot go on (nvcc missing, a CPU-only torch, different CUDA
    versions), or None if it can. The same rules as cmake/cuda_check.cmake."""
    if not nvcc:
        return ("MTAD_CUDA=1 but nvcc was not found: install the CUDA toolkit and put nvcc on PATH "
                "(or set CUDACXX), or build without CUDA (MTAD_CUDA=0)")
    if not version:
        return f"MTAD_CUDA=1 but the CUDA version of {nvcc} could not be read (`{nvcc} --version`)"
    if not torch_cuda:
        return (f"MTAD_CUDA=1 but this PyTorch has no CUDA (torch.version.cuda is None): install a CUDA "
                f"build of torch whose CUDA is {version} (nvcc's), e.g. in its own virtual environment, "
                "and build with --no-build-isolation; or build without CUDA (MTAD_CUDA=0)")
    major_minor = re.match(r"\d+\.\d+", torch_cuda)
    if major_minor is None or major_minor.group(0) != version:
        return (f"MTAD_CUDA=1 but nvcc ({nvcc}) is CUDA {version} and PyTorch was built with CUDA {torch_cuda}: "
                f"use the nvcc of CUDA {torch_cuda} (CUDACXX=/path/to/nvcc) or a torch built for CUDA {version}")
    return None


def want_cuda(forced: str | None, nvcc: str | None, version: str | None, torch_cuda: str | None) -> bool:
    """Whether to build the CUDA kernels. MTAD_CUDA (`forced`) unset: when everything a
    CUDA build needs is there; "0": never; "1": always, or SystemExit with the refusal."""
    if forced is not None and forced.strip() != "":
        if forced.strip().lower() in ("0", "false", "off", "no"):
            return False
        reason = cuda_refusal(nvcc, version, torch_cuda)
        if reason:
            raise SystemExit(f"mtad: {reason}")
        return True
    reason = cuda_refusal(nvcc, version, torch_cuda) if torch_cuda else "PyTorch has no CUDA"
    if reason and torch_cuda:  # a CUDA torch but no usable nvcc: say why the kernels are left out
        print(f"mtad: building without CUDA kernels ({reason.replace('MTAD_CUDA=1 but ', '')})", file=sys.stderr)
    return reason is None


def _read_cmake_cache(cache: Path) -> dict[str, str]:
    entries: dict[str, str] = {}
    for line in cache.read_text(errors="replace").splitlines():
        if not line or line.startswith(("#", "//")) or "=" not in line:
            continue
        key_type, value = line.split("=", 1)
        entries[key_type.split(":", 1)[0]] = value
    return entries


def _same_path(a: str, b: str) -> bool:
    # Symlinks are kept: a virtual environment's python links to the base interpreter
    # but has other packages.
    return os.path.normpath(os.path.abspath(a)) == os.path.normpath(os.path.abspath(b))


def stale_cmake_cache(build_dir: Path, wanted: dict[str, str]) -> str | None:
    """Why the CMake cache in build_dir must not be reused, or None if it may be.

    It may not when a tool or package it names no longer exists (a pip build environment
    that was removed) or when it names another one than this build uses (`wanted`).
    """
    cache = build_dir / "CMakeCache.txt"
    if not cache.exists():
        return None
    entries = _read_cmake_cache(cache)
    named = ("CMAKE_COMMAND", "CMAKE_MAKE_PROGRAM", "CMAKE_CXX_COMPILER", "CMAKE_CUDA_COMPILER", "Torch_DIR",
             "Python_EXECUTABLE", "MTAD_JSON_INCLUDE")
    for key in named:
        value = entries.get(key, "")
        if value and not value.endswith("-NOTFOUND") and not Path(value).exists():
            return f"{key} {value} no longer exists"
    for key, value in wanted.items():
        old = entries.get(key)
        if old is not None and not _same_path(old, value):
            return f"{key} was {old}, now {value}"
    return None


def drop_cmake_cache(build_dir: Path) -> None:
    """Forgets the configuration, keeping object files (ninja and ccache rebuild what differs)."""
    (build_dir / "CMakeCache.txt").unlink(missing_ok=True)
    shutil.rmtree(build_dir / "CMakeFiles", ignore_errors=True)


def _ninja() -> str | None:
    """The ninja this build runs: the ninja package's own binary, else the one on PATH."""
    try:
        import ninja  # type: ignore[import-not-found]

        exe = Path(ninja.BIN_DIR) / "ninja"
        if exe.exists():
            return str(exe)
    except ImportError:
        pass
    return shutil.which("ninja")


class CMakeExtension(Extension):
    def __init__(self, name: str) -> None:
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        import torch

        default_dir = ROOT / "build" / f"py{sys.version_info.major}{sys.version_info.minor}"
        build_dir = Path(os.environ.get("MTAD_BUILD_DIR") or default_dir).resolve()
        build_dir.mkdir(parents=True, exist_ok=True)
        nvcc = find_nvcc()
        version = nvcc_version(nvcc) if nvcc else None
        cuda = want_cuda(os.environ.get("MTAD_CUDA"), nvcc, version, torch.version.cuda)
        cmake = shutil.which("cmake") or "cmake"
        ninja = _ninja()
        wanted = {
            "Python_EXECUTABLE": sys.executable,
            "Torch_DIR": str(Path(torch.utils.cmake_prefix_path) / "Torch"),
        }
        if ninja:
            wanted["CMAKE_MAKE_PROGRAM"] = ninja
        reason = stale_cmake_cache(build_dir, wanted)
        if reason:
            print(f"mtad: reconfiguring {build_dir}: {reason}", file=sys.stderr)
            drop_cmake_cache(build_dir)
        args = [
            cmake,
            "-S", str(ROOT),
            "-B", str(build_dir),
            "-G", "Ninja",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}",
            f"-DMTAD_CUDA={'ON' if cuda else 'OFF'}",
            f"-DMTAD_TORCH_CUDA={torch.version.cuda or 'None'}",
            f"-DCMAKE_BUILD_TYPE={os.environ.get('MTAD_BUILD_TYPE', 'Release')}",
        ]
        if ninja:
            args.append(f"-DCMAKE_MAKE_PROGRAM={ninja}")
        if cuda and nvcc:
            args.append(f"-DCMAKE_CUDA_COMPILER={nvcc}")
        if _json_include():
            args.append(f"-DMTAD_JSON_INCLUDE={_json_include()}")
        if os.environ.get("MTAD_NATIVE") == "0":
            args.append("-DMTAD_NATIVE=OFF")
        subprocess.run(args, check=True)
        jobs = os.environ.get("MTAD_BUILD_JOBS", str(os.cpu_count() or 2))
        subprocess.run([cmake, "--build", str(build_dir), "-j", jobs], check=True)
        built = next((build_dir / "mtad_ext").glob("_C*.so"))
        dest = Path(self.get_ext_fullpath(ext.name))
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built, dest)


if __name__ == "__main__":  # setuptools runs this file as __main__; tests import its helpers
    setup(ext_modules=[CMakeExtension("mtad_ext._C")], cmdclass={"build_ext": CMakeBuild})
