"""The prompt sets a draft is distilled on, and where the teacher's answers to each are cached.

The first set (MT-Bench, HumanEval, standard-library functions, the first batch of requests the
teacher wrote) keeps its answers directly under the teacher cache folder. Answers are stored in
shards by position in a set's length-sorted prompt list, so a set never changes once answered:
more data comes as further sets of self-written requests (another seed), each answered into its
own folder, with requests already in an earlier set dropped so that no held-out text is also
trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mtad.distill import prompts, self_prompts
from mtad.distill.prompts import Prompt


@dataclass(frozen=True)
class PromptSet:
    prompts: list[Prompt]
    shard_dir: Path  # where the teacher's answers to these prompts are cached


def teacher_dir_root() -> Path:
    return prompts.cache_dir() / "distill" / "teacher"


def prompt_sets(
    model_dir: Path, stdlib_limit: int, self_tries: int, more_self_tries: int, seed: int, log: bool = True
) -> list[PromptSet]:
    """The first set, then (more_self_tries > 0) a second set of requests written with seed + 1."""
    root = teacher_dir_root()
    first = self_prompts.texts(model_dir, self_tries, seed, log)
    sets = [PromptSet(prompts.all_prompts(stdlib_limit) + self_prompts.as_prompts(first), root)]
    if more_self_tries > 0:
        seen = set(first)
        more = [t for t in self_prompts.texts(model_dir, more_self_tries, seed + 1, log) if t not in seen]
        tag = f"self-{more_self_tries}-{seed + 1}"
        sets.append(PromptSet(self_prompts.as_prompts(more, f"self/{seed + 1}."), root / tag))
    return sets


def shards_of(sets: list[PromptSet], modes: list[str]) -> list[Path]:
    """The answer shards already cached for these sets in these modes."""
    return sorted(p for s in sets for m in modes for p in s.shard_dir.glob(f"{m}-*.pt"))
