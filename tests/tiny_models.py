"""Tiny random Llama and OPT folders made with transformers' own classes (the oracle)."""

from __future__ import annotations

from pathlib import Path

import torch

# name -> (architecture, config kwargs). Together they cover GQA and MHA, tied and
# untied embeddings, llama3 rope scaling, an explicit head_dim, both OPT layouts, and
# matrices whose rows (and RoPE row pairs) do not fill whole panels (8 rows, 16 with AVX-512).
CONFIGS: dict[str, tuple[str, dict]] = {
    "llama_gqa_tied": (
        "llama",
        dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, tie_word_embeddings=True, rms_norm_eps=1e-5,
             rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
    ),
    "llama_mha_untied": (
        "llama",
        dict(hidden_size=48, intermediate_size=80, num_hidden_layers=3, num_attention_heads=3,
             num_key_value_heads=3, tie_word_embeddings=False,
             rope_parameters={"rope_type": "default", "rope_theta": 100000.0}),
    ),
    "llama3_rope": (
        "llama",
        dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=1, tie_word_embeddings=False,
             rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0,
                              "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                              "original_max_position_embeddings": 16}),
    ),
    "llama_head_dim": (
        "llama",
        dict(hidden_size=48, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, head_dim=24, tie_word_embeddings=True, attention_bias=True,
             rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
    ),
    "llama_odd_rows": (
        "llama",
        dict(hidden_size=24, intermediate_size=52, num_hidden_layers=2, num_attention_heads=2,
             num_key_value_heads=1, head_dim=12, tie_word_embeddings=False,
             rope_parameters={"rope_type": "default", "rope_theta": 10000.0}),
    ),
    "opt_pre_ln": (
        "opt",
        dict(hidden_size=64, ffn_dim=96, num_hidden_layers=2, num_attention_heads=4,
             do_layer_norm_before=True, max_position_embeddings=128),
    ),
    "opt_post_ln_proj": (
        "opt",
        dict(hidden_size=64, ffn_dim=96, num_hidden_layers=2, num_attention_heads=4,
             do_layer_norm_before=False, word_embed_proj_dim=32, max_position_embeddings=128),
    ),
}
VOCAB = 211
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def build_hf_model(name: str, seed: int = 0) -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM, OPTConfig, OPTForCausalLM

    arch, kwargs = CONFIGS[name]
    torch.manual_seed(seed)
    if arch == "llama":
        model = LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, max_position_embeddings=256, **kwargs))
    else:
        model = OPTForCausalLM(OPTConfig(vocab_size=VOCAB, **kwargs))
    # Larger weights than the default init so that logits differ visibly between tokens.
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if "norm" in pname and pname.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            else:
                p.copy_(0.08 * torch.randn_like(p))
    return model.eval()


def save_tiny(name: str, dtype: str, root: Path) -> Path:
    """Saves the model in `dtype`; returns the folder."""
    folder = root / f"{name}-{dtype}"
    if not (folder / "config.json").exists():
        model = build_hf_model(name)
        model.to(DTYPES[dtype]).save_pretrained(folder, safe_serialization=True)
    return folder


def load_reference(folder: Path) -> torch.nn.Module:
    """transformers' model on the same weights, upcast to float32 like mtad's CPU path."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    return model.eval()
