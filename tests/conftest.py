"""Shared pytest fixtures, the `cuda` marker's rule and the CPU-versus-CUDA parametrisation.

The tests mirror csrc/: tests/ops/test_<op>.py per op, tests/methods/ per decoding method,
tests/model/ the model and its loading, tests/driver/ the Python driver and command line,
tests/reliability/ distributions, fuzz regressions and soak, tests/cuda_emu/ the CUDA kernels
under the CPU emulation. Reference implementations live in tests/reference/ only.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import pytest

# Tests measure their own forward costs and leave the user's cost file alone
# (tests/driver/test_cost_cache.py turns it on, in a temporary folder).
os.environ["MTAD_COST_CACHE"] = "off"


@functools.cache
def cuda_kernels() -> bool:
    """A GPU is present and mtad_ext was built with its CUDA kernels."""
    import torch

    import mtad_ext

    if not torch.cuda.is_available():
        return False
    try:
        mtad_ext.ops.normalize(torch.zeros(1, 2, device="cuda"), 1.0, 0, 1.0)
    except RuntimeError as e:
        if "no CUDA kernels" in str(e) or "no kernel" in str(e):
            return False
        raise
    return True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked `cuda` run only where the CUDA kernels can run (the one place this rule lives)."""
    if any(item.get_closest_marker("cuda") for item in items) and not cuda_kernels():
        skip = pytest.mark.skip(reason="needs a CUDA GPU and mtad built with CUDA")
        for item in items:
            if item.get_closest_marker("cuda"):
                item.add_marker(skip)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request: pytest.FixtureRequest) -> str:
    """Runs a test once per backend: an op checked against its definition on the CPU is
    checked the same way on CUDA where a GPU is present."""
    return request.param


@pytest.fixture(params=["float16", "bfloat16"])
def half(request: pytest.FixtureRequest) -> tuple:
    """A half-precision dtype and the tolerance a CUDA kernel in it is held to against the
    CPU's float32 result (the inputs are rounded to it first)."""
    import torch

    return {"float16": (torch.float16, 2e-2), "bfloat16": (torch.bfloat16, 1e-1)}[request.param]


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The converted SmolLM2-135M-Instruct folder (fetched once; skip if unobtainable)."""
    from mtad.fetch import fetch_default

    try:
        return fetch_default(progress=False)
    except Exception as e:  # any failure means "not available here", never a test error
        pytest.skip(f"SmolLM2-135M-Instruct is not available: {e}")


# -- driver and command tests: tiny model folders with a tokenizer, the SmolLM2 draft ------


@pytest.fixture(scope="session")
def tiny_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny random Llama folders with one word-level tokenizer: "target" (llama_gqa_tied) and
    "draft" (llama_mha_untied, another random model over the same vocabulary)."""
    from tiny_models import VOCAB, save_tiny
    from tiny_tokenizer import write_tiny_tokenizer

    root = tmp_path_factory.mktemp("tiny_driver")
    out = {"target": save_tiny("llama_gqa_tied", "float32", root),
           "draft": save_tiny("llama_mha_untied", "float32", root)}
    for folder in out.values():
        write_tiny_tokenizer(folder, VOCAB)
    return out


@pytest.fixture(scope="session")
def smollm2_draft_dir(smollm2_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weak real draft for SmolLM2: layers 0-11 and 20-29 of the target (tokenizer copied)."""
    from layer_drop import make_layer_dropped

    return make_layer_dropped(smollm2_dir, tmp_path_factory.mktemp("smol_draft") / "smol-drop",
                              keep=list(range(12)) + list(range(20, 30)))
