"""Attention over a cached prefix plus a block ruled by a tree mask, in float64."""

from __future__ import annotations

import torch


def reference_attention(q, k, v, prefix, mask, scale):
    T, H, D = q.shape
    M = mask.shape[1] if mask is not None else T
    KVH = k.shape[1]
    keys = prefix + M
    allowed = torch.ones(T, keys, dtype=torch.bool)
    allowed[:, prefix:] = mask if mask is not None else torch.ones(T, T, dtype=torch.bool).tril()
    out = torch.zeros(T, H, D, dtype=torch.float64)
    for h in range(H):
        kk, vv = k[:keys, h // (H // KVH)].double(), v[:keys, h // (H // KVH)].double()
        s = (q[:, h].double() @ kk.T) * scale
        s = s.masked_fill(~allowed, float("-inf"))
        out[:, h] = torch.softmax(s, -1) @ vv
    return out.reshape(T, H * D)
