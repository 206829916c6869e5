"""The harness can fail: deliberate faults applied to copies of the kernels (a removed
__syncthreads, off-by-one bounds, a partial-warp block, a wrong shuffle mask, a divergent
barrier, an early exit, launch and shared-memory limits) are each caught, by an emulation
error naming the line or by a mismatch against the CPU twin, in the thread orders listed.
The same checks pass on the unmodified kernels in every order."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from .cases import attention_case, check_normalize, close, kv_compact_case, rope_inputs, sps_inputs
from .emu import REPO, Emu, EmuError, load_builder

pytestmark = pytest.mark.skipif(os.environ.get("MTAD_EMU_SANITIZE") == "1",
                                reason="faults are injected in the plain build (a memory fault ends a sanitized run)")


def check_rms(emu: Emu, ops) -> None:
    for dim in (40, 1000, 3000):
        x, w = torch.randn(3, dim), torch.rand(dim) + 0.5
        close(emu.rms_norm(x, w, 1e-6), ops.rms_norm(x, w, 1e-6))


def check_attention(emu: Emu, ops) -> None:
    attention_case(emu, ops, torch.float32, 64, 4, 2, T=3, prefix=40, mask_kind="tree")


def check_normalize_topp(emu: Emu, ops) -> None:
    check_normalize(emu, ops, torch.randn(2, 3000) * 3, 1.0, 0, 0.9)


def check_silu(emu: Emu, ops) -> None:
    g, u = torch.randn(1000), torch.randn(1000)
    close(emu.silu_mul(g, u), ops.silu_mul(g, u))


def check_kv(emu: Emu, ops) -> None:
    kv_compact_case(emu, ops, "uint4", "tree_path")


def check_rope(emu: Emu, ops) -> None:
    x, positions, inv_freq = rope_inputs(3, 4, 64, torch.float32)
    got, want = x.clone(), x.clone()
    emu.rope_(got, positions, inv_freq)
    ops.rope_(want, positions, inv_freq)
    close(got, want)


def check_tree_sample(emu: Emu, ops) -> None:
    logp = torch.log_softmax(torch.randn(4, 300), 1)
    parents, tokens = torch.tensor([-1, 0, -1]), torch.tensor([5, 6, 7])
    want = torch.ops.mtad.tree_sample(logp, parents, tokens, 3, 0)
    info = emu.tree_sample(logp, parents, tokens, 3, 0)
    assert (int(info[3]), int(info[6])) == (want[0], want[3])


def check_sps(emu: Emu, ops) -> None:
    tlp, dlp, tokens = sps_inputs(4, 500, torch.Generator().manual_seed(0), "random")
    got = emu.sps_accept(tlp, dlp, tokens, 1, 0)
    assert (int(got[0]), int(got[1])) == tuple(ops.sps_accept(tlp, dlp, tokens, 1, 0))


ALL_ORDERS = ["forward", "reverse", "random"]


@dataclass
class Fault:
    name: str
    file: str  # under csrc/ops/cuda
    old: str
    new: str
    check: Callable[[Emu, object], None]
    error: str | None = None  # a regex the EmuError must match; None: a mismatch is expected
    orders: list[str] = field(default_factory=lambda: ALL_ORDERS)  # orders that must catch it


FAULTS = [
    Fault("missing_barrier_attention_merge", "tree_attention.cu",
          "s_acc[warp][lane + 32 * c] = acc[c];\n    __syncthreads();", "s_acc[warp][lane + 32 * c] = acc[c];\n    ;",
          check_attention),
    # Warp 0 reads the other warps' partial results before they are written; only an order
    # that runs warp 0 ahead shows it (reverse order happens to be correct).
    Fault("missing_barrier_block_reduce", "common.cuh",
          "  if (lane == 0) smem[warp] = v;\n  __syncthreads();", "  if (lane == 0) smem[warp] = v;\n  ;",
          check_normalize_topp, orders=["forward", "random"]),
    Fault("off_by_one_short_loop", "norms.cu",
          "for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {\n      // Hugging Face",
          "for (int64_t i = threadIdx.x; i < dim - 1; i += blockDim.x) {\n      // Hugging Face", check_rms),
    Fault("off_by_one_write_past_end", "activations.cu",
          "i < n; i += int64_t{gridDim.x} * blockDim.x) {\n    const float g",
          "i <= n; i += int64_t{gridDim.x} * blockDim.x) {\n    const float g", check_silu,
          error="wrote outside an output"),
    Fault("off_by_one_kv_words", "kv_compact.cu", "t < 2 * per_cache;", "t < 2 * per_cache - 1;", check_kv),
    Fault("partial_warp_block", "norms.cu", "const int64_t t = (dim + 31) / 32 * 32;", "const int64_t t = dim;",
          check_rms,
          error=r"common\.cuh:\d+: __shfl_xor_sync with mask 0xffffffff names lanes 8-31 .*\(a partial warp\)"),
    Fault("wrong_shuffle_mask", "common.cuh", "v = op(v, __shfl_xor_sync(0xffffffffu, v, off));",
          "v = op(v, __shfl_xor_sync(0x0000ffffu, v, off));", check_normalize_topp,
          error=r"csrc/ops/cuda/common\.cuh:{line}: __shfl_xor_sync with mask 0x0000ffff(: lane \d+ reads lane \d+, "
          r"which is not in the mask| called by lane \d+, which the mask does not include)"),
    Fault("block_over_1024_threads", "norms.cu", "constexpr int kMaxThreads = 512;",
          "constexpr int kMaxThreads = 2048;", check_rms, error=r"norms\.cu:\d+: launch of .* at most 1024"),
    Fault("shared_memory_over_48k", "sampling.cu", "constexpr int kCap = 4096;", "constexpr int kCap = 8192;",
          check_normalize_topp, error=r"sampling\.cu:\d+: __shared__ sm brings .* past the 49152 a kernel may declare"),
    Fault("launch_bounds_exceeded", "rope.cu", "__launch_bounds__(kThreads)", "__launch_bounds__(128)", check_rope,
          error=r"rope\.cu:{line}: a block of 256 threads exceeds __launch_bounds__\(128\)"),
    Fault("divergent_barrier", "tree_accept.cu",
          "if (threadIdx.x == 0) td::sample_walk(logp, V, parents, tokens, N, seed, offset, info);",
          "if (threadIdx.x == 0) { td::sample_walk(logp, V, parents, tokens, N, seed, offset, info); "
          "__syncthreads(); }", check_tree_sample, error=r"tree_accept\.cu:\d+: divergent barriers"),
    Fault("early_exit_before_barrier", "verify.cu", "__shared__ int64_t chain[3];",
          "__shared__ int64_t chain[3]; if (threadIdx.x == 40) return;", check_sps,
          error=r"verify\.cu:\d+: .*(already exited|exited without reaching)"),
]


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Fault], tuple[Emu, int]]:
    """A loaded library with the fault applied to a copy of the kernels, and the line the
    edit starts on."""
    builder = load_builder()
    made: dict[str, tuple[Emu, int]] = {}

    def make(f: Fault) -> tuple[Emu, int]:
        if f.name not in made:
            root = tmp_path_factory.mktemp(f.name) / "csrc"
            shutil.copytree(REPO / "csrc" / "ops", root / "ops")
            path = root / "ops" / "cuda" / f.file
            text = path.read_text(encoding="utf-8")
            assert text.count(f.old) == 1, f"{f.name}: the fault site is gone from {f.file}; update the fault"
            line = text[: text.index(f.old)].count("\n") + 1
            path.write_text(text.replace(f.old, f.new), encoding="utf-8")
            made[f.name] = (Emu(builder.build(root)), line)
        return made[f.name]

    return make


@pytest.mark.parametrize("fault", FAULTS, ids=lambda f: f.name)
def test_fault_is_caught(faulty: Callable[[Fault], tuple[Emu, int]], ops, fault: Fault) -> None:
    emu, line = faulty(fault)
    for order in fault.orders:
        emu.set_order(order, seed=7)
        with pytest.raises((EmuError, AssertionError)) as caught:
            fault.check(emu, ops)
        if fault.error is not None:
            assert caught.type is EmuError, f"{order}: expected an emulation error, got {caught.value}"
            assert re.search(fault.error.replace("{line}", str(line)), str(caught.value)), str(caught.value)


@pytest.mark.parametrize("order", ALL_ORDERS)
@pytest.mark.parametrize("check", sorted({f.check for f in FAULTS}, key=lambda c: c.__name__),
                         ids=lambda c: c.__name__)
def test_fault_checks_pass_unmodified(emu: Emu, ops, order: str, check: Callable[[Emu, object], None]) -> None:
    before = emu.order()
    emu.set_order(order, seed=7)
    try:
        check(emu, ops)
    finally:
        emu.set_order(before)


def test_fault_sites_exist() -> None:
    """Each fault's text is in today's kernels (so that the faults above test something)."""
    for f in FAULTS:
        text = (Path(REPO) / "csrc" / "ops" / "cuda" / f.file).read_text(encoding="utf-8")
        assert text.count(f.old) == 1, f"{f.name}: {f.old!r} not found once in {f.file}"
