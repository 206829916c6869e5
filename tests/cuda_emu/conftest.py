"""The emulated kernels' library, built once per session (cached across sessions)."""

from __future__ import annotations

import os

import pytest
import torch

from .emu import Emu, open_emu


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "emu_heavy: an emulated case left out when MTAD_EMU_SUBSET is set")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """MTAD_EMU_SUBSET=N keeps every N-th case of each emulated test function (the first
    included) and drops the heavy ones: the sanitized runs cover every kernel in a few
    minutes this way."""
    n = int(os.environ.get("MTAD_EMU_SUBSET", "0") or 0)
    if n <= 1:
        return
    seen: dict[str, int] = {}
    drop = []
    for item in items:
        if "cuda_emu" not in str(item.path):
            continue
        fn = item.nodeid.split("[")[0]
        k = seen.get(fn, 0)
        seen[fn] = k + 1
        if k % n != 0 or item.get_closest_marker("emu_heavy") is not None:
            drop.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = [i for i in items if i not in drop]


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
