"""Builds mtad_ext._C by driving CMake (CMakeLists.txt is the one build graph).

CUDA kernels are built when PyTorch has CUDA and nvcc is found; set MTAD_CUDA=0/1 to
force. The build folder is build/<python tag> so that rebuilds are incremental.
"""

from __future__ import annotations

import importlib.util
import os
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


def _want_cuda() -> bool:
    forced = os.environ.get("MTAD_CUDA")
    if forced is not None:
        return forced not in ("", "0", "false", "OFF")
    import torch

    return torch.version.cuda is not None and shutil.which("nvcc") is not None


class CMakeExtension(Extension):
    def __init__(self, name: str) -> None:
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        import torch

        build_dir = ROOT / "build" / f"py{sys.version_info.major}{sys.version_info.minor}"
        build_dir.mkdir(parents=True, exist_ok=True)
        cuda = _want_cuda()
        args = [
            "cmake",
            "-S", str(ROOT),
            "-B", str(build_dir),
            "-G", "Ninja",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}",
            f"-DMTAD_CUDA={'ON' if cuda else 'OFF'}",
            f"-DCMAKE_BUILD_TYPE={os.environ.get('MTAD_BUILD_TYPE', 'Release')}",
        ]
        if _json_include():
            args.append(f"-DMTAD_JSON_INCLUDE={_json_include()}")
        if os.environ.get("MTAD_NATIVE") == "0":
            args.append("-DMTAD_NATIVE=OFF")
        subprocess.run(args, check=True)
        jobs = os.environ.get("MTAD_BUILD_JOBS", str(os.cpu_count() or 2))
        subprocess.run(["cmake", "--build", str(build_dir), "-j", jobs], check=True)
        built = next((build_dir / "mtad_ext").glob("_C*.so"))
        dest = Path(self.get_ext_fullpath(ext.name))
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(built, dest)


setup(ext_modules=[CMakeExtension("mtad_ext._C")], cmdclass={"build_ext": CMakeBuild})
