"""Distil a small draft model from a target (default: SmolLM2-135M-Instruct).

    python -m mtad.distill --out drafts/smollm2-135m-draft [--minutes 60] [--teacher DIR]

Steps (each resumable; the teacher's answers are cached under ~/.cache/mtad/distill):
  1. prompts: MT-Bench (both turns), HumanEval (raw and as a chat request), documented
     standard-library functions (completion and "explain") and user requests the teacher
     writes itself (self_prompts.py), every 8th item of each source held out; with
     --more-self-prompts further sets of such requests (prompt_sets.py);
  2. the teacher answers every prompt, greedily and sampled, keeping its top-32 next-token
     log-probabilities at each generated position (the engine, many sequences per forward);
  3. the student (a small Llama with the teacher's vocabulary, embedding started from the
     teacher's by PCA) is trained on soft cross-entropy to those distributions;
  4. the folder is written (float16 safetensors + the teacher's tokenizer files), then
     measured with the engine on held-out prompts: greedy speculative decoding at gamma = 4
     (tokens per target forward, equality to greedy AR) and the draft's step cost;
  5. provenance.json and PROVENANCE.md record the command, data, seed, times and figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import sys
from pathlib import Path

import torch

from mtad.distill import arg_types, evaluate, export, prompt_sets, prompts, student, teacher_data, train

# training batches whose MLP activity ranks the neurons for --shrink-intermediate (~130 K tokens)
SHRINK_SAMPLE_BATCHES = 32


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m mtad.distill", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--out", type=Path, required=True, help="folder to write the draft into")
    ap.add_argument("--teacher", type=Path, default=None, help="target folder (default: SmolLM2-135M-Instruct)")
    ap.add_argument(
        "--minutes", type=arg_types.positive_number, default=60.0, help="training time budget (default 60)"
    )
    ap.add_argument(
        "--epochs", type=arg_types.positive, default=8, help="at most this many passes over the data (default 8)"
    )
    ap.add_argument(
        "--modes", default="greedy,t10", help="teacher answer modes, from greedy,t10,t08 (default greedy,t10)"
    )
    prompt_sets.add_options(ap)
    ap.add_argument("--max-new", type=arg_types.positive, default=192, help="teacher tokens per answer (default 192)")
    ap.add_argument(
        "--batch-tokens", type=arg_types.positive, default=4096,
        help="padded tokens per training batch (default 4096)",
    )
    ap.add_argument("--lr", type=arg_types.positive_number, default=2e-3, help="peak learning rate (default 2e-3)")
    ap.add_argument(
        "--negatives", type=arg_types.count, default=2048,
        help="tokens drawn per batch besides the teacher's top-k ids to estimate the softmax "
        "normaliser in training (sampled softmax; default 2048; 0: the whole vocabulary, slower)",
    )
    ap.add_argument(
        "--hidden", type=arg_types.positive, default=256,
        help="student width, a multiple of 8 (default 256; 4 heads of hidden/4)",
    )
    ap.add_argument("--layers", type=arg_types.positive, default=2, help="student layers (default 2)")
    ap.add_argument("--intermediate", type=arg_types.positive, default=768, help="student MLP width (default 768)")
    ap.add_argument(
        "--eval-prompts", type=arg_types.positive, default=24,
        help="held-out prompts measured with the engine (default 24)",
    )
    ap.add_argument("--init", type=Path, default=None,
                    help="continue training a draft folder written by an earlier run (its shape wins)")
    ap.add_argument("--grow-layers", type=arg_types.count, default=0,
                    help="with --init: append this many layers that start as the identity (zero output "
                         "projections), so the grown draft starts from the folder's predictions (default 0)")
    ap.add_argument("--shrink-intermediate", type=arg_types.positive, default=None, metavar="N",
                    help="with --init: keep only the N MLP neurons of each layer that add the most to the "
                         "residual stream on a sample of the training answers (room for --grow-layers "
                         "within the size limit; applied before growing)")
    ap.add_argument(
        "--skip-teacher", action="store_true", help="train on the teacher answers already cached, generate none"
    )
    ap.add_argument(
        "--teacher-only", action="store_true",
        help="make the teacher's answers and stop (a later run trains on them with --skip-teacher)",
    )
    args = ap.parse_args(argv)
    if args.grow_layers and args.init is None:
        ap.error("--grow-layers needs --init (it grows a trained draft)")
    if args.shrink_intermediate is not None and args.init is None:
        ap.error("--shrink-intermediate needs --init (it prunes a trained draft)")
    try:  # the shape's own check, so that the command and the Python API keep one rule
        student.StudentShape(hidden=args.hidden, layers=args.layers, intermediate=args.intermediate)
    except ValueError as e:
        ap.error(f"--hidden: {e}")
    if args.skip_teacher and args.teacher_only:
        ap.error("--skip-teacher and --teacher-only exclude each other")
    return args


def main(argv: list[str] | None = None) -> int:
    import transformers

    from mtad.fetch import fetch_default

    args = parse_args(argv)
    teacher_dir = args.teacher or fetch_default()
    torch.manual_seed(args.seed)
    modes = tuple(m for m in teacher_data.MODES if m.name in args.modes.split(","))
    if not modes:
        raise SystemExit(f"--modes: none of {args.modes!r} is one of greedy, t10, t08")
    sets = prompt_sets.from_args(teacher_dir, args)
    all_prompts = [p for s in sets for p in s.prompts]
    data_dir = prompt_sets.teacher_dir_root()

    if args.skip_teacher:
        shards = prompt_sets.shards_of(sets, [m.name for m in modes])
    else:
        shards = [
            shard
            for s in sets
            for shard in teacher_data.build(teacher_dir, s.prompts, s.shard_dir, max_new=args.max_new, modes=modes)
        ]
        if args.teacher_only:
            print(f"[teacher] {len(shards)} answer shards under {data_dir}", file=sys.stderr)
            return 0
    # the answers may have been made by earlier runs too: their files' times tell how long it took
    data_minutes = round(teacher_data.making_minutes([p.stat().st_mtime for p in shards]), 1)
    train_set = train.load_examples(shards, False, args.context)
    held_out = train.load_examples(shards, True, args.context)
    if not train_set or not held_out:
        raise SystemExit(f"no teacher answers under {data_dir}: run without --skip-teacher")
    print(
        f"[data] {len(train_set)} training answers ({sum(len(e.top_ids) for e in train_set):,} tokens), "
        f"{len(held_out)} held out",
        file=sys.stderr,
    )

    shape = student.StudentShape(hidden=args.hidden, layers=args.layers, intermediate=args.intermediate)
    earlier = None
    if args.init is not None:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(args.init, dtype=torch.float32)
        c = model.config
        shape = student.StudentShape(c.hidden_size, c.num_hidden_layers, c.num_attention_heads,
                                     c.num_key_value_heads, c.intermediate_size)
        if (args.init / "provenance.json").is_file():
            earlier = json.loads((args.init / "provenance.json").read_text())
        if args.shrink_intermediate is not None:
            if args.shrink_intermediate > shape.intermediate:
                raise SystemExit(f"--shrink-intermediate {args.shrink_intermediate}: the draft's MLP is only "
                                 f"{shape.intermediate} wide")
            sample = [train.collate(b)[0] for b in train.batches(train_set, args.batch_tokens,
                                                                 random.Random(args.seed))[:SHRINK_SAMPLE_BATCHES]]
            model = student.shrink_mlp(model, args.shrink_intermediate, student.mlp_activity(model, sample))
            shape = dataclasses.replace(shape, intermediate=args.shrink_intermediate)
        if args.grow_layers:
            model = student.grow(model, args.grow_layers)
            shape = dataclasses.replace(shape, layers=shape.layers + args.grow_layers)
    else:
        model = student.init_student(teacher_dir, shape, args.seed)
    result = train.train(
        model,
        train_set,
        held_out,
        epochs=args.epochs,
        minutes=args.minutes,
        max_tokens=args.batch_tokens,
        lr=args.lr,
        seed=args.seed,
        negatives=args.negatives,
    )
    measured = evaluate.teacher_agreement(
        model, held_out, evaluate.chat_sources(all_prompts), args.batch_tokens, prompt_sets.names_by_set(sets)
    )
    size = export.save_draft(model, teacher_dir, args.out)

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(teacher_dir)
    ids = evaluate.held_out_chat(tok, all_prompts, args.eval_prompts)
    engine = evaluate.speculative(teacher_dir, [args.out], ids, eos=tok.eos_token_id)[0]
    evaluation = {
        "greedy top-1 agreement with the teacher (held-out teacher answers)": measured["agreement"],
        "tokens per target forward, greedy speculative decoding, gamma 4 (along the teacher's greedy answers)": (
            measured["tokens_per_forward"]
        ),
        "the same, chat prompts only": measured["chat"],
        "agreement by prompt source": measured["by_source"],
        "agreement by prompt set (held-out answers, agreement)": measured["by_set"],
        "engine, greedy SpS gamma 4 on held-out chat prompts (each source in turn, answers end at EOS)": engine,
    }
    export.write_provenance(
        args.out,
        {
            "teacher": Path(teacher_dir).name,
            "command": "python -m mtad.distill " + " ".join(argv if argv is not None else sys.argv[1:]),
            "seed": args.seed,
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "shape": dataclasses.asdict(shape),
            "parameters": student.parameter_count(model),
            "folder_bytes": size,
            "data": {
                "prompts": len(all_prompts),
                "sources": "MT-Bench, HumanEval, Python standard library, requests the teacher wrote",
                "modes": [m.name for m in modes],
                "train_tokens": sum(len(e.top_ids) for e in train_set),
                "held_out_prompts": sum(p.held_out for p in all_prompts),
                "held_out_every": prompts.HELD_OUT_EVERY,
                "minutes": data_minutes,
            },
            "training": result,
            "continued_from": earlier,
            "evaluation": evaluation,
        },
    )
    print(f"wrote {args.out} ({size / 1e6:.1f} MB)")
    for k, v in evaluation.items():
        print(f"{k}: {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
