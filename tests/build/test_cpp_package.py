"""mtad as a C++ package: `cmake --install` of the build folder, then examples/cpp, a separate
CMake project, found through find_package(mtad 0.1) and run on tiny models. Its tokens and
tokens per target forward must equal what the Python module computes with the same settings."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import mtad_ext

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build" / f"py{sys.version_info.major}{sys.version_info.minor}"
NEW_TOKENS = 24

pytestmark = pytest.mark.skipif(
    not (BUILD / "CMakeCache.txt").exists() or shutil.which("cmake") is None or shutil.which("ninja") is None,
    reason="needs the build folder of `pip install -e .` and cmake + ninja",
)


def _cmake(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["cmake", *args], cwd=cwd, capture_output=True, text=True, check=check)


def _configure(src: Path, build: Path, prefix: Path, check: bool = True) -> subprocess.CompletedProcess:
    args = ["-S", str(src), "-B", str(build), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release",
            f"-DCMAKE_PREFIX_PATH={prefix};{torch.utils.cmake_prefix_path}"]
    if shutil.which("ccache"):
        args.append("-DCMAKE_CXX_COMPILER_LAUNCHER=ccache")
    return _cmake(*args, check=check)


@pytest.fixture(scope="module")
def prefix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mtad_prefix")
    _cmake("--build", str(BUILD), "--target", "mtad_core")
    _cmake("--install", str(BUILD), "--prefix", str(out))
    return out


@pytest.fixture(scope="module")
def example(prefix: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    build = tmp_path_factory.mktemp("mtad_example")
    _configure(ROOT / "examples" / "cpp", build, prefix)
    _cmake("--build", str(build), "-j", os.environ.get("MTAD_BUILD_JOBS", "2"))
    return build / "mtad_example"


def test_install_lays_out_a_cmake_package(prefix: Path) -> None:
    headers = sorted(p.name for p in (prefix / "include" / "mtad").glob("*.h"))
    assert headers == sorted(p.name for p in (ROOT / "csrc" / "mtad").glob("*.h"))
    cmake_dir = next(prefix.glob("lib*/cmake/mtad"))
    for name in ("mtadConfig.cmake", "mtadConfigVersion.cmake", "mtadTargets.cmake"):
        assert (cmake_dir / name).is_file(), name
    assert list(prefix.glob("lib*/libmtad_core.a"))
    # Only files of the package: the Python module and the benchmarks are not installed.
    assert not list(prefix.rglob("_C*.so")) and not list(prefix.rglob("latency"))


def test_find_package_refuses_another_minor_version(prefix: Path, tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.22)\nproject(v LANGUAGES CXX)\nfind_package(mtad 0.2 REQUIRED)\n")
    r = _configure(tmp_path / "src", tmp_path / "build", prefix, check=False)
    assert r.returncode != 0
    assert "mtad" in r.stderr and "0.1.0" in r.stderr


def _python_run(target: mtad_ext.Model, draft: mtad_ext.Model | None, method: str, prompt: list[int],
                table: mtad_ext.TrigramTable | None = None) -> tuple[list[int], float]:
    dec = mtad_ext.Decoder(target, draft, method=method, temperature=0.0, seed=0,
                           capacity=len(prompt) + NEW_TOKENS)
    if table is not None:
        dec.set_trigram_table(table)
    dec.start(prompt)
    while len(dec.tokens) < len(prompt) + NEW_TOKENS:
        dec.step()
    s = dec.total_stats
    return list(dec.tokens[len(prompt):len(prompt) + NEW_TOKENS]), s["emitted"] / s["target_forwards"]


def _parse(stdout: str) -> dict[str, tuple[list[int], float]]:
    tokens: dict[str, list[int]] = {}
    per_forward: dict[str, float] = {}
    for line in stdout.splitlines():
        head, _, rest = line.partition(":")
        if head.endswith(" tokens per target forward"):
            per_forward[head.split()[0]] = float(rest)
        else:
            tokens[head] = [int(x) for x in rest.split()]
    return {m: (tokens[m], per_forward[m]) for m in tokens}


def test_example_decodes_like_the_python_module(example: Path, tiny_dirs: dict[str, Path]) -> None:
    prompt = [5, 17, 42, 5, 17, 99, 3, 5, 17, 42, 8, 150, 5, 17]
    r = subprocess.run([str(example), "--model", str(tiny_dirs["target"]), "--draft", str(tiny_dirs["draft"]),
                        "--prompt", " ".join(map(str, prompt)), "--new-tokens", str(NEW_TOKENS)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    got = _parse(r.stdout)
    assert sorted(got) == ["aded", "ar", "mtad"]

    target = mtad_ext.load_model(str(tiny_dirs["target"]))
    draft = mtad_ext.load_model(str(tiny_dirs["draft"]))
    table = mtad_ext.TrigramTable(target.config["vocab_size"])
    table.add_sequence(prompt)
    table.finalize()
    want = {"ar": _python_run(target, None, "ar", prompt),
            "mtad": _python_run(target, draft, "mtad", prompt),
            "aded": _python_run(target, None, "aded", prompt, table)}
    ar_tokens = want["ar"][0]
    for method, (tokens, per_forward) in got.items():
        assert tokens == want[method][0], method
        assert per_forward == pytest.approx(want[method][1], abs=1e-3), method
        assert tokens == ar_tokens, f"greedy {method} differs from greedy AR"
    assert got["ar"][1] == 1.0


def test_example_reports_a_missing_model_by_name(example: Path, tmp_path: Path) -> None:
    r = subprocess.run([str(example), "--model", str(tmp_path / "nowhere"), "--prompt", "1 2"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "nowhere" in r.stderr
