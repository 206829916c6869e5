"""Logit normalisation and sampling, exactly as docs/algorithms.md section 0.

`normalize` turns raw logits into log-probabilities with -inf for every token removed by
greedy / top-k / top-p; every decoding method draws from (and scores with) its output.
This is the Python reference the native kernels are held to.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .params import check_params

__all__ = ["check_params", "is_one_hot", "normalize", "sample"]


def normalize(logits: Tensor, temperature: float, top_k: int = 0, top_p: float = 1.0) -> Tensor:
    """Log-probabilities [R, V] (float32) from logits [R, V] (or [V]).

    T == 0: one-hot on the argmax (lowest id on ties): 0 there, -inf elsewhere.
    Otherwise logits / T, keep the top_k largest (0: all), then keep the smallest prefix
    of the descending-sorted softmax whose mass reaches top_p (first token always kept;
    0 or 1: all), and renormalise with log-softmax. Ties in the sort go to the lower id.
    """
    check_params(temperature, top_k, top_p)
    if logits.dim() not in (1, 2):
        raise ValueError(f"logits must be [V] or [R, V], got shape {tuple(logits.shape)}")
    x = logits.float()
    vocab = x.shape[-1]

    if temperature == 0:
        # torch.argmax returns the first maximal index, i.e. the lowest id on ties.
        idx = torch.argmax(x, dim=-1, keepdim=True)
        out = torch.full_like(x, -math.inf)
        return out.scatter_(-1, idx, 0.0)

    x = x / temperature
    use_k = 0 < top_k < vocab
    use_p = 0.0 < top_p < 1.0
    if not use_k and not use_p:
        return torch.log_softmax(x, dim=-1)
    keep = _keep_mask(x, top_k if use_k else vocab, top_p if use_p else 1.0)
    return torch.log_softmax(x.masked_fill(~keep, -math.inf), dim=-1)


# First candidate-set size for top-p without top-k; grown 8x until the nucleus fits.
_TOP_P_FIRST = 64


def _keep_mask(x: Tensor, k: int, p: float) -> Tensor:
    """Bool mask of the tokens §0 keeps: the k largest, then the top-p prefix of those.

    A full sort of a 50k vocabulary costs milliseconds per token; the kept set only needs
    the largest values, so torch.topk gives them and the mask is rebuilt from the count n
    of kept tokens. The prefix masses depend only on the sorted values, so n does not
    depend on how ties are ordered; ties at the boundary value are then resolved to the
    lowest ids, exactly as a stable descending sort would.
    """
    vocab = x.shape[-1]
    if p >= 1.0:
        vals = torch.topk(x, k, dim=-1).values  # sorted descending
        n = torch.full(x.shape[:-1] + (1,), k, dtype=torch.int64, device=x.device)
    else:
        # Mass is measured over the top-k set (all tokens when k == vocab).
        m = k if k < vocab else min(vocab, _TOP_P_FIRST)
        while True:
            vals = torch.topk(x, m, dim=-1).values
            lse = torch.logsumexp(vals if k < vocab else x, dim=-1, keepdim=True)
            probs = torch.exp(vals - lse)
            # Kept while the mass strictly before a token is below p: the first always is.
            before = torch.cumsum(probs, dim=-1) - probs
            n = (before < p).sum(dim=-1, keepdim=True)
            # Every row's prefix ended inside the m candidates (or there are no more).
            if m == vocab or m == k or bool((n < m).all()):
                break
            m = min(vocab, m * 8)
    boundary = vals.gather(-1, n - 1)  # value of the last kept token
    greater = x > boundary
    ties = x == boundary
    # Ties at the boundary: keep the lowest ids, as many as the count still allows.
    tie_rank = torch.cumsum(ties.to(torch.int64), dim=-1)
    return greater | (ties & (tie_rank <= n - greater.sum(dim=-1, keepdim=True)))


def is_one_hot(logprobs: Tensor) -> Tensor:
    """Bool per row: exactly one token has non-zero probability."""
    return torch.isfinite(logprobs).sum(dim=-1) == 1


def sample(logprobs: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """One token id per row (int64 [R]) drawn from log-probabilities [R, V] (or [V]).

    Rows that are all one-hot (greedy) are answered by argmax without consuming random
    numbers, so greedy decoding never advances the generator.
    """
    squeeze = logprobs.dim() == 1
    lp = logprobs.unsqueeze(0) if squeeze else logprobs
    if bool(is_one_hot(lp).all()):
        out = torch.argmax(lp, dim=-1)
    else:
        # Inverse-CDF sampling: one uniform per row (torch.multinomial costs ~10x more on
        # a 50k vocabulary). exp(-inf) = 0 gives removed tokens an empty interval, and
        # right=True picks the first token whose cumulative mass exceeds u, so they are
        # never drawn. float64 keeps the cumulative sum exact enough for 50k+ tokens.
        cdf = torch.cumsum(torch.exp(lp.double()), dim=-1)
        u = torch.rand(
            lp.shape[:-1] + (1,), generator=generator, dtype=torch.float64, device=lp.device
        )
        out = torch.searchsorted(cdf, u * cdf[..., -1:], right=True).squeeze(-1)
        out = out.clamp_max(lp.shape[-1] - 1)
        # u * total can round up to the total itself, past the last token with mass: take
        # that token instead (rare, so only then is it searched for).
        bad = torch.isneginf(lp.gather(-1, out.unsqueeze(-1)).squeeze(-1))
        if bool(bad.any()):
            flipped = torch.isfinite(lp).flip(-1).to(torch.int8)
            last = lp.shape[-1] - 1 - torch.argmax(flipped, dim=-1)
            out = torch.where(bad, last, out)
    return out[0] if squeeze else out
