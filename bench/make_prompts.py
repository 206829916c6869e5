"""Writes chat prompts as token-id lines for bench/latency (one prompt per line).

    python bench/make_prompts.py [--model DIR] [--out bench/prompts/smollm2_chat.ids]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mtad.fetch import default_model_dir
from mtad.tokenizer import Tokenizer

# Everyday requests of the kinds MT-Bench covers: writing, reasoning, coding, knowledge.
PROMPTS = [
    "Explain, step by step, how a bicycle's gears make it easier to ride up a hill.",
    "Write a short story about a robot who learns to paint.",
    "Write a Python function that returns the n-th Fibonacci number, with a docstring.",
    "What are the main differences between a virus and a bacterium?",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=None, help="model folder (default: SmolLM2-135M-Instruct)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "prompts" / "smollm2_chat.ids")
    args = ap.parse_args()
    tok = Tokenizer(args.model or default_model_dir())
    lines = []
    for p in PROMPTS:
        text = tok.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True)
        lines.append(" ".join(str(i) for i in tok.encode(text, add_special_tokens=False)))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {len(lines)} prompts to {args.out}")


if __name__ == "__main__":
    main()
