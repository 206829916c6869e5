"""setup.py never reuses a CMake cache made with tools that are gone or differ: the README's
main command builds in pip's temporary environment, the test command outside it, in the
same build folder, in either order."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _cache(folder: Path, **entries: str) -> Path:
    types = {"CMAKE_COMMAND": "INTERNAL", "Torch_DIR": "PATH"}
    lines = ["# This is the CMakeCache file.", "//Path to a program.", ""]
    lines += [f"{k}:{types.get(k, 'FILEPATH')}={v}" for k, v in entries.items()]
    (folder / "CMakeCache.txt").write_text("\n".join(lines) + "\n")
    (folder / "CMakeFiles").mkdir(exist_ok=True)
    (folder / "CMakeFiles" / "x.txt").write_text("x")
    (folder / "keep.o").write_text("object")
    return folder


def _tools(tmp_path: Path) -> dict[str, str]:
    bin_dir = tmp_path / "env" / "bin"
    bin_dir.mkdir(parents=True)
    for name in ("ninja", "cmake"):
        (bin_dir / name).write_text("")
    torch_dir = tmp_path / "env" / "torch" / "Torch"
    torch_dir.mkdir(parents=True)
    return {"CMAKE_MAKE_PROGRAM": str(bin_dir / "ninja"), "CMAKE_COMMAND": str(bin_dir / "cmake"),
            "Torch_DIR": str(torch_dir), "Python_EXECUTABLE": sys.executable}


def test_a_cache_of_the_same_tools_is_kept(setup_py, tmp_path: Path) -> None:
    tools = _tools(tmp_path)
    build = _cache(tmp_path, **tools)
    wanted = {k: tools[k] for k in ("CMAKE_MAKE_PROGRAM", "Torch_DIR", "Python_EXECUTABLE")}
    assert setup_py.stale_cmake_cache(build, wanted) is None
    assert setup_py.stale_cmake_cache(tmp_path / "no-cache-here", wanted) is None


def test_a_cache_naming_a_removed_build_environment_is_stale(setup_py, tmp_path: Path) -> None:
    tools = _tools(tmp_path)
    build = _cache(tmp_path, **tools)
    Path(tools["CMAKE_MAKE_PROGRAM"]).unlink()  # pip removed its temporary environment
    reason = setup_py.stale_cmake_cache(build, {})
    assert reason is not None and "CMAKE_MAKE_PROGRAM" in reason and "no longer exists" in reason


def test_a_cache_of_another_torch_or_python_is_stale(setup_py, tmp_path: Path) -> None:
    tools = _tools(tmp_path)
    build = _cache(tmp_path, **tools)
    other = tmp_path / "other" / "Torch"
    other.mkdir(parents=True)
    reason = setup_py.stale_cmake_cache(build, {"Torch_DIR": str(other)})
    assert reason is not None and "Torch_DIR" in reason
    # A virtual environment's python links to the same binary but is another environment.
    venv_python = tmp_path / "venv" / "python3"
    venv_python.parent.mkdir()
    venv_python.symlink_to(sys.executable)
    assert "Python_EXECUTABLE" in setup_py.stale_cmake_cache(build, {"Python_EXECUTABLE": str(venv_python)})


def test_dropping_the_cache_keeps_the_objects(setup_py, tmp_path: Path) -> None:
    build = _cache(tmp_path, **_tools(tmp_path))
    setup_py.drop_cmake_cache(build)
    assert not (build / "CMakeCache.txt").exists() and not (build / "CMakeFiles").exists()
    assert (build / "keep.o").read_text() == "object"
