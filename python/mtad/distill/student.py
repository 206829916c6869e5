"""The draft's shape and its start from the teacher.

A Llama with the teacher's vocabulary and special tokens, a narrow residual stream and
few layers: the tied embedding (vocabulary x hidden) is most of its size, so the folder
stays under 32 MB in float16 with the tokenizer files beside it. The embedding starts as
the teacher's embedding projected onto its top principal directions, which gives the tied
output layer a meaningful vocabulary geometry from the first step.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass(frozen=True)
class StudentShape:
    hidden: int = 256
    layers: int = 2
    heads: int = 4
    kv_heads: int = 2
    intermediate: int = 768

    def __post_init__(self) -> None:
        # Checked here so that a bad shape fails by name, not deep inside transformers.
        for name in ("hidden", "layers", "heads", "kv_heads", "intermediate"):
            if getattr(self, name) < 1:
                raise ValueError(f"student {name} must be >= 1, got {getattr(self, name)}")
        if self.hidden % self.heads or (self.hidden // self.heads) % 2:
            raise ValueError(f"student hidden {self.hidden} must split into {self.heads} heads of an even "
                             "width (rotary positions turn pairs of values)")
        if self.heads % self.kv_heads:
            raise ValueError(f"student heads {self.heads} must be a multiple of its kv_heads {self.kv_heads}")


def student_config(teacher_config: Any, shape: StudentShape) -> Any:
    from transformers import LlamaConfig

    t = teacher_config
    rope = getattr(t, "rope_parameters", None) or {"rope_type": "default", "rope_theta": getattr(t, "rope_theta", 1e4)}
    return LlamaConfig(
        vocab_size=t.vocab_size,
        hidden_size=shape.hidden,
        intermediate_size=shape.intermediate,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        head_dim=shape.hidden // shape.heads,
        max_position_embeddings=t.max_position_embeddings,
        rms_norm_eps=t.rms_norm_eps,
        rope_parameters=dict(rope),
        tie_word_embeddings=True,
        bos_token_id=t.bos_token_id,
        eos_token_id=t.eos_token_id,
        pad_token_id=getattr(t, "pad_token_id", None),
        hidden_act="silu",
        attention_bias=False,
        mlp_bias=False,
    )


def pca_embedding(teacher_embedding: torch.Tensor, hidden: int) -> torch.Tensor:
    """The teacher's embedding rows in the span of its top `hidden` principal directions,
    scaled so that rows keep the teacher's typical norm."""
    e = teacher_embedding.float()
    _, _, v = torch.linalg.svd(e - e.mean(0), full_matrices=False)
    proj = e @ v[:hidden].T
    return proj * (e.norm(dim=1).mean() / proj.norm(dim=1).mean())


def init_student(teacher_dir: Path, shape: StudentShape, seed: int) -> Any:
    from transformers import AutoConfig, AutoModelForCausalLM, LlamaForCausalLM

    torch.manual_seed(seed)
    tcfg = AutoConfig.from_pretrained(teacher_dir)
    student = LlamaForCausalLM(student_config(tcfg, shape))
    teacher = AutoModelForCausalLM.from_pretrained(teacher_dir, dtype=torch.float32)
    with torch.no_grad():
        student.model.embed_tokens.weight.copy_(pca_embedding(teacher.model.embed_tokens.weight, shape.hidden))
    student.tie_weights()
    return student


def grow(model: Any, extra_layers: int) -> Any:
    """The same model with `extra_layers` decoder layers appended whose output projections
    (attention o_proj, MLP down_proj) are zero: each adds nothing to the residual stream, so
    the grown model computes exactly what `model` does and training continues from there."""
    from transformers import LlamaForCausalLM

    if extra_layers < 0:
        raise ValueError(f"extra_layers must be >= 0, got {extra_layers}")
    config = copy.deepcopy(model.config)
    config.num_hidden_layers += extra_layers
    grown = LlamaForCausalLM(config).to(next(model.parameters()).dtype)
    missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    new = {f"model.layers.{i}." for i in range(model.config.num_hidden_layers, config.num_hidden_layers)}
    if unexpected or any(not any(k.startswith(n) for n in new) for k in missing):
        raise ValueError(f"cannot grow this model: missing {missing}, unexpected {unexpected}")
    with torch.no_grad():
        for layer in grown.model.layers[model.config.num_hidden_layers :]:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
    grown.tie_weights()
    return grown


@torch.no_grad()
def mlp_activity(model: Any, batches: list[torch.Tensor]) -> list[torch.Tensor]:
    """Per layer, how much each MLP neuron adds to the residual stream over the tokens of
    `batches` (right-padded id rows, pad id 0 not counted): the mean |gate * up| output of
    the neuron times the norm of its down-projection column."""
    sums = [torch.zeros(layer.mlp.down_proj.in_features) for layer in model.model.layers]
    mask: torch.Tensor | None = None

    def hook(i: int) -> Any:
        def add(_module: Any, args: tuple[torch.Tensor, ...]) -> None:
            assert mask is not None
            sums[i].add_(args[0].abs()[mask].sum(0).float())

        return add

    handles = [layer.mlp.down_proj.register_forward_pre_hook(hook(i)) for i, layer in enumerate(model.model.layers)]
    was_training = model.training
    try:
        model.eval()
        count = 0
        for ids in batches:
            mask = ids != 0
            count += int(mask.sum())
            model.model(input_ids=ids)
    finally:  # the caller's model comes back as it was, hooks off and mode kept, even on an error
        model.train(was_training)
        for h in handles:
            h.remove()
    return [s / max(count, 1) * layer.mlp.down_proj.weight.float().norm(dim=0)
            for s, layer in zip(sums, model.model.layers, strict=True)]


def shrink_mlp(model: Any, intermediate: int, activity: list[torch.Tensor]) -> Any:
    """The same model with each layer's MLP cut to the `intermediate` neurons of highest
    `activity` (mlp_activity): room in the size limit for another layer, at the cost of
    the neurons that contribute least. Neurons keep their order; nothing else changes."""
    from transformers import LlamaForCausalLM

    width = model.config.intermediate_size
    if not 1 <= intermediate <= width:
        raise ValueError(f"can shrink the MLP width {width} only to 1..{width}, got {intermediate}")
    if len(activity) != len(model.model.layers) or any(a.shape != (width,) for a in activity):
        raise ValueError(f"activity must be one vector of {width} per layer ({len(model.model.layers)} layers)")
    config = copy.deepcopy(model.config)
    config.intermediate_size = intermediate
    state = dict(model.state_dict())
    for i, a in enumerate(activity):
        keep = a.topk(intermediate).indices.sort().values
        pre = f"model.layers.{i}.mlp."
        for name in ("gate_proj", "up_proj"):
            state[pre + name + ".weight"] = state[pre + name + ".weight"][keep]
        state[pre + "down_proj.weight"] = state[pre + "down_proj.weight"][:, keep]
    small = LlamaForCausalLM(config).to(next(model.parameters()).dtype)
    small.load_state_dict(state)
    small.tie_weights()
    return small


def parameter_count(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())
