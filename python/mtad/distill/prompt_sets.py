"""The prompt sets a draft is distilled on, and where the teacher's answers to each are cached.

The first set (MT-Bench, HumanEval, standard-library functions, the first batch of requests the
teacher wrote) keeps its answers directly under the teacher cache folder. Answers are stored in
shards by position in a set's length-sorted prompt list, so a set never changes once answered:
more data comes as further sets of self-written requests (another seed), each answered into its
own folder, with requests already in an earlier set dropped so that no held-out text is also
trained on.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mtad.distill import prompts, self_prompts
from mtad.distill.arg_types import count, positive, tries_list
from mtad.distill.prompts import Prompt


@dataclass(frozen=True)
class PromptSet:
    prompts: list[Prompt]
    shard_dir: Path  # where the teacher's answers to these prompts are cached


def teacher_dir_root() -> Path:
    return prompts.cache_dir() / "distill" / "teacher"


def prompt_sets(
    model_dir: Path,
    stdlib_limit: int,
    self_tries: int,
    more_self_tries: Sequence[int],
    seed: int,
    log: bool = True,
    self_wanted: int | None = None,
    held_out_only: bool = False,
) -> list[PromptSet]:
    """The first set, then one set of requests per entry of more_self_tries (that many tries,
    written with seed + 1, seed + 2, ...), each without the requests of the sets before it.

    self_wanted: a caller that needs only the first self_wanted self-written requests (held out
    ones only, with held_out_only) gets the sets cut short once they hold that many: each set a
    prefix of the whole, with the names and held-out flags the whole set gives them, and no set
    written after the one that completes the count."""
    root = teacher_dir_root()

    def need(have: list[Prompt]) -> int | None:
        """Requests a set must hold to bring the count to self_wanted (None: all of them)."""
        if self_wanted is None:
            return None
        got = sum(1 for p in have if p.held_out or not held_out_only)
        left = max(0, self_wanted - got)
        return (left - 1) * prompts.HELD_OUT_EVERY + 1 if held_out_only and left else left

    def written(tries: int, set_seed: int, drop: set[str], have: list[Prompt]) -> list[str]:
        """The set's requests, less those in `drop`: all, or as many as `need` asks for."""
        want = need(have)
        if want == 0:
            return []
        at_least = want
        while True:
            raw = self_prompts.texts(model_dir, tries, set_seed, log, at_least)
            kept = [t for t in raw if t not in drop]
            if want is None or len(kept) >= want or len(raw) < at_least:  # enough, or the whole set
                return kept if want is None else kept[:want]
            at_least += want - len(kept)

    first = written(self_tries, seed, set(), [])
    sets = [PromptSet(prompts.all_prompts(stdlib_limit) + self_prompts.as_prompts(first), root)]
    seen = set(first)
    mine = self_prompts.as_prompts(first)
    for i, tries in enumerate(more_self_tries, start=1):
        more = written(tries, seed + i, seen, mine)
        seen.update(more)
        tag = f"self-{tries}-{seed + i}"
        sets.append(PromptSet(self_prompts.as_prompts(more, f"self/{seed + i}."), root / tag))
        mine += sets[-1].prompts
    return sets


def names_by_set(sets: list[PromptSet]) -> dict[str, set[str]]:
    """Each set's prompt names under a label: "first", then its cache folder's name."""
    return {("first" if i == 0 else s.shard_dir.name): {p.name for p in s.prompts} for i, s in enumerate(sets)}


def add_options(ap: argparse.ArgumentParser) -> None:
    """The options that pick the prompt sets, shared by python -m mtad.distill and its evaluate
    command so that both read the same sets (and the same held-out answers) from one command line."""
    ap.add_argument("--stdlib-prompts", type=count, default=300, help="standard-library functions used (default 300)")
    ap.add_argument("--self-prompts", type=count, default=2000,
                    help="user requests the teacher writes itself, tries (default 2000; 0: none)")
    ap.add_argument("--more-self-prompts", type=tries_list, default=[],
                    help="tries for further sets of requests, comma-separated, one set each (seed + 1, "
                    "seed + 2, ...), each answered into a cache folder of its own so that earlier sets' "
                    "answers stay valid; requests an earlier set has are dropped (default 0: none)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the requests the teacher writes and of training")
    ap.add_argument("--context", type=positive, default=192,
                    help="prompt tokens kept as context in training (default 192)")


def from_args(model_dir: Path, args: argparse.Namespace, log: bool = True) -> list[PromptSet]:
    """The prompt sets that add_options' options name."""
    return prompt_sets(model_dir, args.stdlib_prompts, args.self_prompts, args.more_self_prompts, args.seed, log)


def shards_of(sets: list[PromptSet], modes: list[str]) -> list[Path]:
    """The answer shards already cached for these sets in these modes."""
    return sorted(p for s in sets for m in modes for p in s.shard_dir.glob(f"{m}-*.pt"))
