"""The emulated kernels' library, built once per session (cached across sessions)."""

from __future__ import annotations

import os

import pytest
import torch

from .emu import Emu, open_emu


@pytest.fixture(scope="session")
def emu() -> Emu:
    if os.environ.get("MTAD_EMU_SANITIZE") == "1" and "libasan" not in os.environ.get("LD_PRELOAD", ""):
        pytest.fail("MTAD_EMU_SANITIZE=1 needs the ASan runtime preloaded: run tools/cuda_emu/run_sanitized.sh")
    return open_emu()


@pytest.fixture(scope="session")
def ops():  # noqa: ANN201 - the extension's ops module
    """The CPU twins: mtad_ext.ops."""
    import mtad_ext

    return mtad_ext.ops


@pytest.fixture(autouse=True)
def _seeded() -> None:
    torch.manual_seed(1234)
