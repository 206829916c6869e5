"""AR (algorithms.md 1): one target forward per token; greedy takes the argmax."""

from __future__ import annotations

import torch
from decoding import GREEDY, run

import mtad_ext


def test_ar_greedy_is_argmax_of_forward(tiny):
    model = tiny["llama_gqa_tied"]
    prompt = [7, 8, 9]
    out = run(mtad_ext.Decoder(model, method="ar", capacity=64, **GREEDY), prompt, 10)
    seq = list(prompt)
    for tok in out[:10]:
        logits = model.forward(model.new_cache(64), torch.tensor(seq))[-1]
        assert tok == int(logits.argmax())
        seq.append(tok)
