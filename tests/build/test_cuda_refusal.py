"""Asking for CUDA (MTAD_CUDA=1) never gives a silent CPU-only module: setup.py and
cmake/cuda_check.cmake each refuse, with a message that says what is missing, when nvcc is
missing, when PyTorch has no CUDA, or when nvcc's CUDA version differs from torch's. The
checks run on faked inputs; nothing is built."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECK = ROOT / "cmake" / "cuda_check.cmake"
NVCC = "/opt/cuda-13.0/bin/nvcc"  # never run: the version is given

# (nvcc, nvcc's CUDA version, torch.version.cuda) -> words the refusal must hold
REFUSALS = {
    "no nvcc": ((None, None, "13.0"), "nvcc was not found"),
    "cpu torch": ((NVCC, "13.0", None), "PyTorch has no CUDA"),
    "older torch cuda": ((NVCC, "13.0", "12.8"),
                         "nvcc (/opt/cuda-13.0/bin/nvcc) is CUDA 13.0 and PyTorch was built with CUDA 12.8"),
    "newer torch cuda": ((NVCC, "12.6", "13.0"), "is CUDA 12.6 and PyTorch was built with CUDA 13.0"),
    "unreadable nvcc": ((NVCC, None, "13.0"), "could not be read"),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_setup_refuses_a_cuda_build_that_cannot_be(setup_py, case: str) -> None:
    (nvcc, version, torch_cuda), words = REFUSALS[case]
    assert words in setup_py.cuda_refusal(nvcc, version, torch_cuda)
    with pytest.raises(SystemExit, match="mtad: MTAD_CUDA=1 but") as e:
        setup_py.want_cuda("1", nvcc, version, torch_cuda)
    assert words in str(e.value)


def test_setup_builds_cuda_when_everything_agrees(setup_py) -> None:
    assert setup_py.cuda_refusal(NVCC, "13.0", "13.0") is None
    assert setup_py.cuda_refusal(NVCC, "13.0", "13.0.2") is None  # patch levels may differ
    assert setup_py.want_cuda("1", NVCC, "13.0", "13.0") is True
    assert setup_py.want_cuda(None, NVCC, "13.0", "13.0") is True


def test_setup_without_the_switch_builds_cpu_and_never_refuses(setup_py, capsys) -> None:
    assert setup_py.want_cuda(None, None, None, None) is False
    assert setup_py.want_cuda(None, NVCC, "13.0", None) is False
    assert setup_py.want_cuda("0", NVCC, "13.0", "13.0") is False
    assert setup_py.want_cuda("OFF", None, None, None) is False
    # A CUDA torch without a matching nvcc: CPU only, but it says why.
    assert setup_py.want_cuda(None, NVCC, "12.6", "13.0") is False
    assert "building without CUDA kernels" in capsys.readouterr().err


def test_setup_reads_nvccs_version(setup_py, tmp_path: Path) -> None:
    fake = tmp_path / "nvcc"
    fake.write_text("#!/bin/sh\necho 'Cuda compilation tools, release 12.8, V12.8.93'\n")
    fake.chmod(0o755)
    assert setup_py.nvcc_version(str(fake)) == "12.8"
    assert setup_py.nvcc_version(str(tmp_path / "missing")) is None


def _cmake_check(**defs: str) -> subprocess.CompletedProcess:
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not on PATH")
    args = [cmake] + [f"-D{k}={v}" for k, v in defs.items()] + ["-P", str(CHECK)]
    return subprocess.run(args, capture_output=True, text=True, env={**os.environ, "CUDACXX": ""})


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_cmake_refuses_a_cuda_build_that_cannot_be(case: str) -> None:
    (nvcc, version, torch_cuda), words = REFUSALS[case]
    r = _cmake_check(MTAD_NVCC=nvcc or "MTAD_NVCC-NOTFOUND", MTAD_NVCC_VERSION=version or "",
                     MTAD_TORCH_CUDA=torch_cuda or "None")
    assert r.returncode != 0
    message = " ".join(r.stderr.split())  # CMake wraps long messages
    assert "mtad: MTAD_CUDA is on but" in message and words in message, r.stderr


def test_cmake_passes_when_everything_agrees() -> None:
    r = _cmake_check(MTAD_NVCC=NVCC, MTAD_NVCC_VERSION="13.0", MTAD_TORCH_CUDA="13.0")
    assert r.returncode == 0, r.stderr
    assert "CUDA check passed" in r.stdout + r.stderr


def test_cmake_reads_nvccs_version(tmp_path: Path) -> None:
    fake = tmp_path / "nvcc"
    fake.write_text("#!/bin/sh\necho 'Cuda compilation tools, release 12.8, V12.8.93'\n")
    fake.chmod(0o755)
    r = _cmake_check(MTAD_NVCC=str(fake), MTAD_TORCH_CUDA="13.0")
    assert r.returncode != 0 and "is CUDA 12.8 and PyTorch was built with CUDA 13.0" in " ".join(r.stderr.split())


def test_a_cmake_configuration_asking_for_cuda_with_a_cpu_torch_stops_at_once(tmp_path: Path) -> None:
    """The whole CMakeLists.txt with MTAD_CUDA=ON against this (CPU) torch: the refusal comes
    before any compiler or package is looked for."""
    torch = pytest.importorskip("torch")
    if torch.version.cuda is not None:
        pytest.skip("this torch has CUDA")
    cmake = shutil.which("cmake")
    if cmake is None:
        pytest.skip("cmake is not on PATH")
    fake = tmp_path / "nvcc"
    fake.write_text("#!/bin/sh\necho 'Cuda compilation tools, release 13.0, V13.0.88'\n")
    fake.chmod(0o755)
    r = subprocess.run([cmake, "-S", str(ROOT), "-B", str(tmp_path / "b"), "-DMTAD_CUDA=ON",
                        "-DMTAD_TORCH_CUDA=None", f"-DCMAKE_CUDA_COMPILER={fake}"],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "PyTorch has no CUDA" in " ".join(r.stderr.split()), r.stderr
