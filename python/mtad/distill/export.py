"""Writing the trained draft as an ordinary HF folder: float16 safetensors, the teacher's
tokenizer files, and its provenance."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "generation_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
)


def save_draft(student: Any, teacher_dir: Path, out: Path) -> int:
    """Writes config.json + model.safetensors (float16) + tokenizer files; returns the folder's bytes."""
    out.mkdir(parents=True, exist_ok=True)
    half = student.to(torch.float16)
    half.save_pretrained(out, safe_serialization=True)
    student.to(torch.float32)
    for name in TOKENIZER_FILES:
        src = teacher_dir / name
        if not src.is_file():
            continue
        if name == "tokenizer.json":
            # The same JSON without indentation: the teacher's copy is more than half
            # whitespace (3.5 -> 1.6 MB), bytes the 32 MB folder spends on weights instead.
            data = json.loads(src.read_text(encoding="utf-8"))
            (out / name).write_text(json.dumps(data, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
        else:
            shutil.copyfile(src, out / name)
    return folder_bytes(out)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file())


def write_provenance(out: Path, record: dict[str, Any]) -> None:
    """provenance.json (machine-readable) and PROVENANCE.md (for people) next to the weights."""
    (out / "provenance.json").write_text(json.dumps(record, indent=2) + "\n")
    ev = record.get("evaluation", {})
    steps = record["training"]["steps"]
    kept = record["training"].get("kept_step", steps)  # records before kept_step existed: the last
    lines = [
        f"# {out.name}: a draft distilled from {record['teacher']}",
        "",
        "Made by `python -m mtad.distill` (python/mtad/distill/) on this project's 2-core CPU machine.",
        "",
        f"- command: `{record['command']}`",
        f"- seed: {record['seed']}; torch {record['torch']}, transformers {record['transformers']}",
        f"- shape: {record['shape']}, {record['parameters']:,} parameters, float16, "
        f"folder {record['folder_bytes']:,} bytes",
        f"- data: {record['data']['prompts']} prompts ({record['data']['sources']}), answered by the teacher in modes "
        f"{record['data']['modes']}; {record['data']['train_tokens']:,} training tokens, "
        f"{record['data']['held_out_prompts']} held-out prompts (every {record['data']['held_out_every']}th item "
        "of each source) never trained on",
        f"- teacher data: {record['data']['minutes']} min; training: {record['training']['minutes']} min, "
        f"{steps} steps" + (f" (the weights of step {kept} kept: best held out)" if kept != steps else ""),
    ]
    prev = record.get("continued_from")
    if prev:
        lines.append(f"- continued from an earlier run of {prev['training']['minutes']} min, "
                     f"{prev['training']['steps']} steps (its record: provenance.json, `continued_from`)")
    lines += [
        "",
        "## Quality (held-out prompts)",
        "",
    ]
    for k, v in ev.items():
        lines.append(f"- {k}: {v}")
    (out / "PROVENANCE.md").write_text("\n".join(lines) + "\n")
