"""Cases the kernel tests and the fault tests share: each runs one emulated kernel and its
CPU twin on the same inputs and asserts they agree."""

from __future__ import annotations

import math

import torch

from .emu import FLOAT_SENTINEL, Emu

INF = float("inf")
# Summation order differs (block reductions vs the CPU's loops): float32 agrees to a few
# ulps; a 16-bit result may land one or two ulps of its type away.
TOL = {torch.float32: (2e-5, 1e-5), torch.float16: (2e-3, 1e-3), torch.bfloat16: (1.6e-2, 1e-2)}


def close(got: torch.Tensor, want: torch.Tensor, scale: float = 1.0) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    assert not (got == FLOAT_SENTINEL).any(), "the kernel left output elements unwritten"
    rtol, atol = TOL[got.dtype]
    torch.testing.assert_close(got.float(), want.float(), rtol=rtol * scale, atol=atol * scale, equal_nan=True)


def rope_inputs(T: int, heads: int, D: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = torch.randn(T, heads, D).to(dtype)
    positions = torch.randint(0, 4096, (T,), dtype=torch.int64)
    inv_freq = 1.0 / (10000.0 ** (torch.arange(0, D, 2, dtype=torch.float32) / D))
    return x, positions, inv_freq


def random_tree_mask(M: int, T: int, gen: torch.Generator) -> torch.Tensor:
    """mask [T, M] of the last T nodes of a random tree of M nodes (parents first): row t
    attends to the ancestors of node M - T + t and to itself."""
    parents = [-1] + [int(torch.randint(-1, i, (1,), generator=gen)) for i in range(1, M)]
    anc = torch.zeros(M, M, dtype=torch.bool)
    for i in range(M):
        anc[i, i] = True
        if parents[i] >= 0:
            anc[i] |= anc[parents[i]]
    return anc[M - T:].contiguous()


def attention_case(emu: Emu, ops, dtype: torch.dtype, D: int, H: int, KVH: int, T: int, prefix: int,
                   mask_kind: str) -> None:
    gen = torch.Generator().manual_seed(D * 1000 + H * 100 + KVH * 10 + T + prefix)
    M = T if mask_kind == "causal" else T + 5
    mask = None if mask_kind == "causal" else random_tree_mask(M, T, gen)
    if mask_kind == "empty_row":
        mask[0] = False  # with prefix 0: a row that attends to nothing (zeros)
    C = prefix + M + 3  # spare slots past the region: reading them would change the result
    q = torch.randn(T, H, D, generator=gen).to(dtype)
    k = torch.randn(C, KVH, D, generator=gen).to(dtype)
    v = torch.randn(C, KVH, D, generator=gen).to(dtype)
    scale = 1.0 / math.sqrt(D)
    got = emu.tree_attention(q, k, v, prefix, mask, scale)
    want = ops.tree_attention(q.float(), k.float(), v.float(), prefix, mask, scale)
    close(got, want.to(dtype), scale=2.0)


def check_normalize(emu: Emu, ops, logits: torch.Tensor, T: float, k: int, p: float) -> torch.Tensor:
    got = emu.normalize(logits, T, k, p)
    want = ops.normalize(logits, T, k, p)
    assert not (got == FLOAT_SENTINEL).any(), "unwritten output"
    # The kept set (finite entries) and NaNs exactly; values to rounding (sums differ in order).
    assert torch.equal(got.isfinite(), want.isfinite()), "different kept tokens"
    assert torch.equal(got.isnan(), want.isnan())
    assert torch.equal(got == -INF, want == -INF)
    fin = want.isfinite()
    torch.testing.assert_close(got[fin], want[fin], rtol=1e-5, atol=2e-5)
    return got


def sps_inputs(G: int, V: int, gen: torch.Generator, case: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    tlp = torch.log_softmax(torch.randn(G + 1, V, generator=gen) * 2, 1)
    dlp = torch.log_softmax(torch.randn(G, V, generator=gen) * 2, 1)
    tokens = torch.multinomial(dlp.exp(), 1, generator=gen).reshape(-1) if G else torch.zeros(0, dtype=torch.int64)
    if case == "close" and G:  # draft close to the target: long acceptances
        dlp = torch.log_softmax(tlp[:G] + 0.1 * torch.randn(G, V, generator=gen), 1)
    if case == "masked" and G:  # top-k style -inf entries on both sides
        tlp[:, V // 2:] = -INF
        tlp = torch.log_softmax(tlp, 1)
        dlp[0, int(tokens[0])] = -INF  # a token the draft gives no mass: accepted if p has it
    if case == "same" and G:  # identical distributions: the residual is empty, p is used
        dlp = tlp[:G].clone()
    return tlp, dlp, tokens


KV_CASES = {  # (dtype, KVH, D, storage offset in elements): row bytes and base alignment
    "uint4": (torch.float32, 2, 64, 0),
    "uint2": (torch.float16, 1, 4, 0),
    "uint32": (torch.float16, 1, 2, 0),
    "uint16": (torch.bfloat16, 1, 1, 0),
    "uint8": (torch.uint8, 3, 1, 1),
    "uint8_odd_base": (torch.uint8, 1, 16, 1),
}


def kv_tensor(L: int, C: int, KVH: int, D: int, dtype: torch.dtype, offset: int, gen: torch.Generator) -> torch.Tensor:
    n = L * C * KVH * D
    buf = torch.randint(0, 250, (n + offset,), generator=gen).to(dtype)
    return buf[offset:].view(L, C, KVH, D)


def kv_compact_case(emu: Emu, ops, width: str, case: str) -> None:
    """kv_compact moving the accepted slots behind the prefix, for one word width."""
    dtype, KVH, D, offset = KV_CASES[width]
    gen = torch.Generator().manual_seed(len(width) + len(case))
    L, C, prefix = 3, 40, 11
    slots = {"chain": [11, 12, 13], "tree_path": [12, 15, 22, 30], "in_place": [11, 12, 20],
             "overlap": [13, 14, 15, 16]}[case]  # overlap: a source is a later destination
    s = torch.tensor(slots, dtype=torch.int64)
    k, v = kv_tensor(L, C, KVH, D, dtype, offset, gen), kv_tensor(L, C, KVH, D, dtype, offset, gen)
    k2, v2 = k.clone(), v.clone()
    emu.kv_compact(k, v, prefix, s)
    ops.kv_compact(k2, v2, prefix, s)
    assert torch.equal(k, k2) and torch.equal(v, v2)
