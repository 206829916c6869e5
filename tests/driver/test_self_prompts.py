"""The requests the target writes itself (mtad.distill.self_prompts): a caller that needs only
the first ones gets exactly the whole set's first ones, and a stopped run resumes where it
stopped, giving the same set as one run from the start."""

from __future__ import annotations

from pathlib import Path

import pytest
from mtad.distill import prompt_sets, prompts, self_prompts

TRIES = 160  # five batches of 32


def test_first_requests_are_the_whole_sets_first_and_a_resumed_set_is_the_same(
    tiny_dirs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tiny_dirs["target"]
    monkeypatch.setenv("MTAD_CACHE", str(tmp_path / "one"))
    first = self_prompts.texts(target, TRIES, 5, log=False, at_least=1)
    partial = tmp_path / "one" / "distill" / f"self-prompts-{TRIES}-5.partial.json"
    whole = tmp_path / "one" / "distill" / f"self-prompts-{TRIES}-5.json"
    assert first and partial.is_file() and not whole.is_file()
    resumed = self_prompts.texts(target, TRIES, 5, log=False)  # goes on from the partial file
    assert whole.is_file() and not partial.is_file()
    monkeypatch.setenv("MTAD_CACHE", str(tmp_path / "two"))
    at_once = self_prompts.texts(target, TRIES, 5, log=False)
    assert len(at_once) > len(first) and resumed == at_once and at_once[: len(first)] == first


def test_prompt_sets_cut_short_hold_the_whole_sets_first_held_out_requests(
    tiny_dirs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tiny_dirs["target"]
    monkeypatch.setattr(prompts, "all_prompts", lambda limit: [])  # the offline sets play no part here
    monkeypatch.setenv("MTAD_CACHE", str(tmp_path / "cut"))
    cut = prompt_sets.prompt_sets(target, 0, 0, [TRIES, TRIES], 4, log=False, self_wanted=2, held_out_only=True)
    monkeypatch.setenv("MTAD_CACHE", str(tmp_path / "whole"))
    whole = prompt_sets.prompt_sets(target, 0, 0, [TRIES, TRIES], 4, log=False)

    def held_out(sets: list[prompt_sets.PromptSet]) -> list[prompts.Prompt]:
        return [p for s in sets for p in s.prompts if p.held_out]

    assert len(held_out(whole)) > 2
    assert held_out(cut) == held_out(whole)[:2]
    # Only the first set was written (partly): the second was not needed.
    written = sorted(p.name for p in (tmp_path / "cut" / "distill").iterdir())
    assert written == [f"self-prompts-{TRIES}-5.partial.json"]
    assert [p.name for p in held_out(cut)] == ["self/5.0", f"self/5.{prompts.HELD_OUT_EVERY}"]
