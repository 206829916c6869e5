"""A weak but real draft for SmolLM2: the target with a block of middle layers dropped."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from safetensors.torch import load_file, save_file


def make_layer_dropped(src: Path, dst: Path, keep: list[int]) -> Path:
    """Writes a Llama folder holding only the layers in `keep`, renumbered in order."""
    if (dst / "config.json").exists():
        return dst
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cfg = json.loads((src / "config.json").read_text())
    cfg["num_hidden_layers"] = len(keep)
    (tmp / "config.json").write_text(json.dumps(cfg, indent=2))
    renumber = {old: new for new, old in enumerate(keep)}
    out = {}
    for name, t in load_file(src / "model.safetensors").items():
        m = re.match(r"model\.layers\.(\d+)\.(.*)", name)
        if m is None:
            out[name] = t
        elif int(m.group(1)) in renumber:
            out[f"model.layers.{renumber[int(m.group(1))]}.{m.group(2)}"] = t
    save_file(out, tmp / "model.safetensors")
    for f in src.iterdir():
        if f.name.startswith("tokenizer") or f.name in ("generation_config.json", "special_tokens_map.json"):
            shutil.copy2(f, tmp / f.name)
    tmp.rename(dst)
    return dst
