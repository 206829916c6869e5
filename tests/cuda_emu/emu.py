"""The emulated CUDA kernels (tools/cuda_emu) on CPU tensors: one method per raw-pointer
launcher of csrc/ops/cuda, through ctypes. Outputs are allocated here and filled with a
sentinel first, so an element a kernel forgets to write shows as a mismatch."""

from __future__ import annotations

import ctypes
import importlib.util
import os
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
_DTYPES = {torch.float32: 0, torch.float16: 1, torch.bfloat16: 2}
ORDERS = {"forward": 0, "reverse": 1, "random": 2}
FLOAT_SENTINEL = -7777.0
INT_SENTINEL = -7777

# info layouts of ops/cuda/launch_verify.h (verify_detail) and ops/tree_accept.h
VERIFY_HEADER = 6
TREE_HEADER = 8


class EmuError(RuntimeError):
    """A kernel launch failed under the emulation (misuse of a barrier, a warp collective,
    shared memory or launch limits, or the launcher's own argument check)."""


def load_builder():  # noqa: ANN201 - a module object
    spec = importlib.util.spec_from_file_location("mtad_cuda_emu_build", REPO / "tools" / "cuda_emu" / "build.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _p(t: torch.Tensor | None) -> ctypes.c_void_p | None:
    if t is None:
        return None
    assert t.is_contiguous() and t.device.type == "cpu"
    return ctypes.c_void_p(t.data_ptr())


GUARD = 64  # sentinel elements on either side of every output buffer
_guarded: list[tuple[torch.Tensor, int]] = []  # (buffer, elements) of the outputs of the call being made


def _filled(shape: tuple[int, ...] | torch.Size, dtype: torch.dtype) -> torch.Tensor:
    """An output of `shape` inside a buffer with GUARD sentinel elements before and after,
    so that a kernel writing past either end is caught even without AddressSanitizer."""
    n = 1
    for d in shape:
        n *= d
    buf = torch.full((n + 2 * GUARD,), FLOAT_SENTINEL if dtype.is_floating_point else INT_SENTINEL, dtype=dtype)
    _guarded.append((buf, n))
    return buf[GUARD:GUARD + n].view(tuple(shape))


def _guards_intact(buf: torch.Tensor, n: int) -> bool:
    s = FLOAT_SENTINEL if buf.dtype.is_floating_point else INT_SENTINEL
    return bool((buf[:GUARD] == s).all() and (buf[GUARD + n:] == s).all())


_I64, _U64, _F32, _P, _I = ctypes.c_int64, ctypes.c_uint64, ctypes.c_float, ctypes.c_void_p, ctypes.c_int
_SIGNATURES: dict[str, list[type]] = {
    "emu_rms_norm": [_I, _P, _P, _P, _I64, _I64, _F32],
    "emu_layer_norm": [_I, _P, _P, _P, _P, _I64, _I64, _F32],
    "emu_rope": [_I, _P, _P, _P, _I64, _I64, _I64],
    "emu_tree_attention": [_I, _P, _P, _P, _P, _P, _I64, _I64, _I64, _I64, _I64, _I64, _F32],
    "emu_silu_mul": [_I, _P, _P, _P, _I64],
    "emu_relu": [_I, _P, _I64],
    "emu_normalize": [_P, _P, _I64, _I64, _F32, _I64, _F32],
    "emu_sample": [_P, _P, _I64, _I64, _U64, _U64],
    "emu_sample_repeat": [_P, _P, _I64, _I64, _U64, _U64],
    "emu_kv_compact": [_P, _P, _I64, _I64, _I64, _I64, _P, _I64],
    "emu_verify_tree": [_P, _I64, _P, _P, _I64, _P, _I64, _F32, _P, _P],
    "emu_sps_accept": [_P, _P, _P, _I64, _I64, _U64, _U64, _P],
    "emu_beam_keys": [_P, _P, _P, _I64, _I64, _I, _U64, _U64],
    "emu_beam_joint": [_P, _P, _P, _I64, _I64],
    "emu_beam_finish": [_P, _I, _I64, _P, _P, _I64, _I64, _P, _P, _P, _P, _P, _P],
    "emu_tree_accept": [_P, _P, _P, _I64, _I64, _P],
    "emu_tree_sample": [_P, _I64, _P, _P, _I64, _U64, _U64, _P],
}


class Emu:
    def __init__(self, lib: Path) -> None:
        self.path = lib
        self.lib = ctypes.CDLL(str(lib))
        for name, args in _SIGNATURES.items():
            fn = getattr(self.lib, name)
            fn.argtypes = args
            fn.restype = ctypes.c_int
        self.lib.emu_last_error.restype = ctypes.c_char_p
        self.lib.emu_set_order.argtypes = [ctypes.c_int, ctypes.c_uint64]
        self.lib.emu_order.restype = ctypes.c_int
        self.lib.emu_stats.argtypes = [ctypes.POINTER(ctypes.c_uint64)]
        self.lib.emu_set_static_smem_limit.argtypes = [ctypes.c_uint64]
        self.lib.emu_set_static_smem_limit.restype = ctypes.c_uint64

    def _call(self, name: str, *args: object) -> None:
        outputs = list(_guarded)
        _guarded.clear()
        if getattr(self.lib, name)(*args) != 0:
            raise EmuError(self.lib.emu_last_error().decode())
        for buf, n in outputs:
            if not _guards_intact(buf, n):
                raise EmuError(f"{name[4:]}: the kernel wrote outside an output of {n} elements")

    def set_order(self, order: str, seed: int = 1) -> None:
        self.lib.emu_set_order(ORDERS[order], seed)

    def set_static_smem_limit(self, n: int) -> int:
        """The static shared memory a block may declare (default 48 KiB); returns the old one."""
        return int(self.lib.emu_set_static_smem_limit(n))

    def order(self) -> str:
        return {v: k for k, v in ORDERS.items()}[self.lib.emu_order()]

    def stats(self) -> dict[str, int]:
        buf = (ctypes.c_uint64 * 5)()
        self.lib.emu_stats(buf)
        return dict(zip(["launches", "blocks", "threads", "switches", "warp_collectives"], buf, strict=True))

    # -- layers ------------------------------------------------------------------------------
    def rms_norm(self, x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
        y = _filled(x.shape, x.dtype)
        self._call("emu_rms_norm", _DTYPES[x.dtype], _p(x), _p(w), _p(y), x.shape[0], x.shape[1], eps)
        return y

    def layer_norm(self, x: torch.Tensor, w: torch.Tensor | None, b: torch.Tensor | None, eps: float) -> torch.Tensor:
        y = _filled(x.shape, x.dtype)
        self._call("emu_layer_norm", _DTYPES[x.dtype], _p(x), _p(w), _p(b), _p(y), x.shape[0], x.shape[1], eps)
        return y

    def rope_(self, x: torch.Tensor, positions: torch.Tensor, inv_freq: torch.Tensor) -> None:
        T, H, D = x.shape
        self._call("emu_rope", _DTYPES[x.dtype], _p(x), _p(positions), _p(inv_freq), T, H, D)

    def tree_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, prefix: int,
                       mask: torch.Tensor | None, scale: float) -> torch.Tensor:
        T, H, D = q.shape
        KVH = k.shape[1]
        M = T if mask is None else mask.shape[1]
        out = _filled((T, H * D), q.dtype)
        self._call("emu_tree_attention", _DTYPES[q.dtype], _p(q), _p(k), _p(v), _p(mask), _p(out), T, M, H, KVH, D,
                   prefix, scale)
        return out

    def silu_mul(self, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        out = _filled(gate.shape, gate.dtype)
        self._call("emu_silu_mul", _DTYPES[gate.dtype], _p(gate), _p(up), _p(out), gate.numel())
        return out

    def relu_(self, x: torch.Tensor, n: int | None = None) -> None:
        self._call("emu_relu", _DTYPES[x.dtype], _p(x), x.numel() if n is None else n)

    # -- sampling and verification ------------------------------------------------------------
    def normalize(self, logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
        out = _filled(logits.shape, torch.float32)
        R, V = logits.shape
        self._call("emu_normalize", _p(logits), _p(out), R, V, temperature, top_k, top_p)
        return out

    def sample(self, logprobs: torch.Tensor, seed: int, offset: int) -> torch.Tensor:
        R, V = logprobs.shape
        out = _filled((R,), torch.int64)
        self._call("emu_sample", _p(logprobs), _p(out), R, V, seed, offset)
        return out

    def sample_repeat(self, row: torch.Tensor, draws: int, seed: int, offset: int) -> torch.Tensor:
        out = _filled((draws,), torch.int64)
        self._call("emu_sample_repeat", _p(row), _p(out), draws, row.numel(), seed, offset)
        return out

    def kv_compact(self, k: torch.Tensor, v: torch.Tensor, prefix: int, slots: torch.Tensor) -> None:
        L, C = k.shape[:2]
        row_bytes = k[0, 0].numel() * k.element_size()
        self._call("emu_kv_compact", _p(k), _p(v), L, C, row_bytes, prefix, _p(slots), slots.numel())

    def verify_tree(self, logp: torch.Tensor, parents: torch.Tensor, tokens: torch.Tensor, best_lq: torch.Tensor,
                    log_tau: float) -> tuple[torch.Tensor, torch.Tensor]:
        N, V, G = parents.numel(), logp.shape[1], best_lq.numel()
        node_lp = _filled((N,), torch.float32)
        info = _filled((VERIFY_HEADER + 2 * N,), torch.int64)
        self._call("emu_verify_tree", _p(logp), V, _p(parents), _p(tokens), N, _p(best_lq), G, log_tau, _p(node_lp),
                   _p(info))
        return node_lp, info

    def sps_accept(self, tlp: torch.Tensor, dlp: torch.Tensor, tokens: torch.Tensor, seed: int,
                   offset: int) -> torch.Tensor:
        G, V = dlp.shape
        out = _filled((3,), torch.int64)
        self._call("emu_sps_accept", _p(tlp), _p(dlp), _p(tokens), G, V, seed, offset, _p(out))
        return out

    def beam_keys(self, lp: torch.Tensor, scores: torch.Tensor, gumbel: bool, seed: int, offset: int) -> torch.Tensor:
        rows, V = lp.shape
        keys = _filled((rows * V,), torch.int64)
        self._call("emu_beam_keys", _p(lp), _p(scores), _p(keys), rows, V, int(gumbel), seed, offset)
        return keys

    def beam_joint(self, lp: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        rows, V = lp.shape
        joint = _filled((rows * V,), torch.float32)
        self._call("emu_beam_joint", _p(lp), _p(scores), _p(joint), rows, V)
        return joint

    def beam_finish(self, chosen: torch.Tensor, from_keys: bool, lp: torch.Tensor,
                    scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        M = chosen.numel()
        rows, V = lp.shape
        outs = [_filled((M,), torch.int64), _filled((M,), torch.float32), _filled((M,), torch.int64),
                _filled((M,), torch.int64), _filled((M,), torch.float32), _filled((M,), torch.float32)]
        flat, joint, parent, token, token_lp, score = outs
        self._call("emu_beam_finish", _p(chosen), int(from_keys), M, _p(lp), _p(scores), V, rows * V, _p(flat),
                   _p(joint), _p(parent), _p(token), _p(token_lp), _p(score))
        return parent, token, token_lp, score

    def tree_accept(self, best: torch.Tensor, parents: torch.Tensor, tokens: torch.Tensor, V: int) -> torch.Tensor:
        N = parents.numel()
        info = _filled((TREE_HEADER + 2 * N,), torch.int64)
        self._call("emu_tree_accept", _p(best), _p(parents), _p(tokens), N, V, _p(info))
        return info

    def tree_sample(self, logp: torch.Tensor, parents: torch.Tensor, tokens: torch.Tensor, seed: int,
                    offset: int) -> torch.Tensor:
        N, V = parents.numel(), logp.shape[1]
        info = _filled((TREE_HEADER + 2 * N,), torch.int64)
        self._call("emu_tree_sample", _p(logp), V, _p(parents), _p(tokens), N, seed, offset, _p(info))
        return info


def open_emu(src: Path | None = None) -> Emu:
    """Builds (or finds in the cache) the library for `src` (default: the repository's csrc)
    and loads it. MTAD_EMU_SANITIZE=1 selects the AddressSanitizer + UBSan build."""
    sanitize = os.environ.get("MTAD_EMU_SANITIZE") == "1"
    return Emu(load_builder().build(src, sanitize=sanitize))
