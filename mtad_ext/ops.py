"""The engine's fused kernels on plain tensors.

Each op is registered once, as a torch operator `torch.ops.mtad.<name>` (csrc/bindings.cpp,
seeds and offsets int64 there as the schema has no unsigned type); these are typed
wrappers over them that take unsigned 64-bit seeds and return the results of verify and
the trie acceptance ops as dicts. Semantics: the headers csrc/ops/<op>.h and algorithms.md.
"""

from __future__ import annotations

import operator
from typing import TypedDict

import torch
from torch import Tensor

from . import _C  # noqa: F401  (registers torch.ops.mtad)

_mtad = torch.ops.mtad

__all__ = [
    "TreeAcceptResult",
    "VerifyResult",
    "beam_step",
    "beam_step_padded",
    "gate_up_silu",
    "kv_compact",
    "layer_norm",
    "linear",
    "linear_add_",
    "linear_relu",
    "normalize",
    "qkv_rope",
    "relu_",
    "rms_norm",
    "rope_",
    "sample",
    "set_min_parallel_work",
    "silu_mul",
    "sps_accept",
    "tree_accept",
    "tree_attention",
    "tree_sample",
    "verify",
]


class VerifyResult(TypedDict):
    accept_len: int  # the deepest passing depth (0 if none)
    accept_node: int  # the node ending the accepted path (-1 when accept_len == 0)
    path: Tensor  # int64 [accept_len] on the CPU: node indices root -> accept_node
    bonus_token: int  # sampled from the target after the accepted path
    node_logprob: Tensor  # float32 [N]: each node's summed target path log-prob


class TreeAcceptResult(TypedDict):
    accept_len: int  # accepted draft tokens
    accept_node: int  # the node ending the accepted path (-1 when none)
    path: Tensor  # int64 [accept_len] on the CPU: node indices root -> accept_node
    next_token: int  # the target's token after the accepted path


def _u64(value: int, name: str) -> int:
    """An unsigned 64-bit seed or offset as the schema's int64 (the same 64 bits)."""
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(value).__name__}") from None
    if not 0 <= v < 1 << 64:
        raise TypeError(f"{name} must be an unsigned 64-bit int, got {v}")
    return v - (1 << 64) if v >= 1 << 63 else v


# ---- model kernels ---------------------------------------------------------------------


def linear(x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    """x @ w.T (+ b); w in the [out, in] layout (float32, float16 or bfloat16 on the CPU)."""
    return _mtad.linear(x, w, b)


def rms_norm(x: Tensor, w: Tensor, eps: float) -> Tensor:
    """RMSNorm over the last dimension of x [T, H]."""
    return _mtad.rms_norm(x, w, eps)


def layer_norm(x: Tensor, w: Tensor | None, b: Tensor | None, eps: float) -> Tensor:
    """LayerNorm over the last dimension of x [T, H]; w and b may be None."""
    return _mtad.layer_norm(x, w, b, eps)


def rope_(x: Tensor, positions: Tensor, inv_freq: Tensor) -> None:
    """Rotary embedding in place on x [T, heads, D] (rotate-half pairing)."""
    _mtad.rope_(x, positions, inv_freq)


def tree_attention(q: Tensor, k: Tensor, v: Tensor, prefix: int, mask: Tensor | None, scale: float) -> Tensor:
    """Attention of q [T, H, D] against the cache layer k, v [C, KVH, D] under a tree mask
    bool [T, M] (None: causal); returns [T, H * D]."""
    return _mtad.tree_attention(q, k, v, prefix, mask, scale)


def silu_mul(gate: Tensor, up: Tensor) -> Tensor:
    """silu(gate) * up."""
    return _mtad.silu_mul(gate, up)


def relu_(x: Tensor) -> None:
    """ReLU in place."""
    _mtad.relu_(x)


def linear_add_(y: Tensor, x: Tensor, w: Tensor, b: Tensor | None = None) -> None:
    """y += x @ w.T (+ b), in place."""
    _mtad.linear_add_(y, x, w, b)


def gate_up_silu(
    x: Tensor, w_gate: Tensor, w_up: Tensor, b_gate: Tensor | None = None, b_up: Tensor | None = None
) -> Tensor:
    """silu(x @ w_gate.T + b_gate) * (x @ w_up.T + b_up), both projections in one pass."""
    return _mtad.gate_up_silu(x, w_gate, w_up, b_gate, b_up)


def linear_relu(x: Tensor, w: Tensor, b: Tensor | None = None) -> Tensor:
    """relu(x @ w.T + b)."""
    return _mtad.linear_relu(x, w, b)


def qkv_rope(
    x: Tensor, wq: Tensor, wk: Tensor, wv: Tensor, bq: Tensor | None, bk: Tensor | None, bv: Tensor | None,
    positions: Tensor | None, inv_freq: Tensor | None, k_out: Tensor, v_out: Tensor,
) -> Tensor:
    """q, k, v projections in one pass, RoPE on q and k when inv_freq is given; k and v are
    written into k_out / v_out [T, KVH, D]; returns q [T, H, D]."""
    return _mtad.qkv_rope(x, wq, wk, wv, bq, bk, bv, positions, inv_freq, k_out, v_out)


def set_min_parallel_work(n: int) -> int:
    """Least multiply-adds a CPU kernel splits across threads (default 65536); returns the
    previous value. Tests set 0 so that tiny models run the multi-thread paths."""
    return _mtad.set_min_parallel_work(n)


# ---- decoding kernels -------------------------------------------------------------------


def normalize(logits: Tensor, temperature: float, top_k: int, top_p: float) -> Tensor:
    """Log-probabilities [R, V] from logits [R, V] (algorithms.md section 0), -inf for removed
    tokens."""
    return _mtad.normalize(logits, temperature, top_k, top_p)


def sample(logprobs: Tensor, seed: int, offset: int) -> Tensor:
    """One token per row (int64 [R]); row r draws u = rng(seed, offset + r)."""
    return _mtad.sample(logprobs, _u64(seed, "seed"), _u64(offset, "offset"))


def beam_step(
    logits: Tensor, scores: Tensor, width: int, temperature: float, top_k: int, top_p: float,
    with_replacement: bool, seed: int, offset: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One MTAD draft beam step (algorithms.md 3.1). Returns (parent, token, token_logprob,
    score), each [M], by descending joint score; scores renormalised over the M chosen."""
    return _mtad.beam_step(
        logits, scores, width, temperature, top_k, top_p, with_replacement, _u64(seed, "seed"), _u64(offset, "offset")
    )


def beam_step_padded(
    logits: Tensor, scores: Tensor, width: int, temperature: float, top_k: int, top_p: float,
    with_replacement: bool, seed: int, offset: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """beam_step without its host read (issue 29): (parent, token, token_logprob, score, bad),
    always beam_step's most beams, the live ones first, then dead ones (parent 0, token 0,
    token_logprob and score -inf); bad (int64 [1]) counts the NaN / +inf scores."""
    return _mtad.beam_step_padded(
        logits, scores, width, temperature, top_k, top_p, with_replacement, _u64(seed, "seed"), _u64(offset, "offset")
    )


def verify(
    target_logits: Tensor, parents: Tensor, tokens: Tensor, best_lq: Tensor, tau: float, temperature: float,
    top_k: int, top_p: float, seed: int, offset: int,
) -> VerifyResult:
    """Joint-likelihood verification of a draft tree (algorithms.md 3.2 / 3.3)."""
    a, node, path, bonus, node_lp = _mtad.verify(
        target_logits, parents, tokens, best_lq, tau, temperature, top_k, top_p, _u64(seed, "seed"),
        _u64(offset, "offset"),
    )
    return VerifyResult(accept_len=a, accept_node=node, path=path, bonus_token=bonus, node_logprob=node_lp)


def sps_accept(
    target_logprobs: Tensor, draft_logprobs: Tensor, tokens: Tensor, seed: int, offset: int
) -> tuple[int, int]:
    """Speculative-sampling acceptance of one draft chain; returns (n_accepted, next_token)."""
    return _mtad.sps_accept(target_logprobs, draft_logprobs, tokens, _u64(seed, "seed"), _u64(offset, "offset"))


def kv_compact(k: Tensor, v: Tensor, prefix: int, slots: Tensor) -> None:
    """Move the K/V rows at `slots` of every layer to prefix, prefix + 1, ... (in place)."""
    _mtad.kv_compact(k, v, prefix, slots)


def tree_accept(target: Tensor, parents: Tensor, tokens: Tensor) -> TreeAcceptResult:
    """Greedy acceptance of a draft trie (ADED). target: logits [N + 1, V] or argmax ids
    int64 [N + 1]."""
    a, node, path, nxt = _mtad.tree_accept(target, parents, tokens)
    return TreeAcceptResult(accept_len=a, accept_node=node, path=path, next_token=nxt)


def tree_sample(target_logprobs: Tensor, parents: Tensor, tokens: Tensor, seed: int, offset: int) -> TreeAcceptResult:
    """Lossless multi-candidate rejection sampling over a draft trie (normalised target
    log-probs [N + 1, V])."""
    a, node, path, nxt = _mtad.tree_sample(target_logprobs, parents, tokens, _u64(seed, "seed"), _u64(offset, "offset"))
    return TreeAcceptResult(accept_len=a, accept_node=node, path=path, next_token=nxt)
