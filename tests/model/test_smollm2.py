"""The real SmolLM2-135M-Instruct: mtad equals transformers on logits and greedy tokens."""

from __future__ import annotations

import pytest
import torch

import mtad_ext

pytestmark = pytest.mark.smollm2

PROMPT = [{"role": "user", "content": "Write a short story about a robot who learns to paint."}]


@pytest.fixture(scope="module")
def reference(smollm2_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir, dtype=torch.float32).eval()
    ids = tok.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    return model, list(ids)


@pytest.mark.parametrize("mmap", [False, True])
def test_logits_match_transformers(smollm2_dir, reference, mmap):
    ref, ids = reference
    with torch.no_grad():
        expected = ref(torch.tensor([ids])).logits[0]
    model = mtad_ext.load_model(str(smollm2_dir), mmap=mmap)
    got = model.forward(model.new_cache(len(ids)), torch.tensor(ids))
    # 30 float32 layers with other summation orders: ~1e-4 on logits whose spread is ~8.
    torch.testing.assert_close(got, expected, atol=1e-3, rtol=1e-4)
    assert torch.equal(got.argmax(-1), expected.argmax(-1))


def test_greedy_tokens_match_generate(smollm2_dir, reference):
    ref, ids = reference
    n = 32
    with torch.no_grad():
        expected = ref.generate(torch.tensor([ids]), max_new_tokens=n, do_sample=False)[0, len(ids):].tolist()
    assert len(expected) == n, "the prompt should not end within 32 tokens"

    model = mtad_ext.load_model(str(smollm2_dir))
    cache = model.new_cache(len(ids) + n)
    logits = model.forward(cache, torch.tensor(ids), logit_rows=torch.tensor([len(ids) - 1]))
    out: list[int] = []
    while len(out) < n:
        out.append(int(logits[-1].argmax()))
        logits = model.forward(cache, torch.tensor(out[-1:]))
    assert out == expected
