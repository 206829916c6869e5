"""The Python driver (mtad.load / Generator) end to end over the native Decoder: every
method, streaming, stopping inside a multi-token step, counters, the draft/target
compatibility check and argument errors. Tiny random folders for the logic, SmolLM2 with
its layer-dropped draft for the real thing."""

from __future__ import annotations

import json
import math
import shutil
import warnings
from pathlib import Path
from typing import Any

import mtad
import pytest
from mtad import AdedOptions, Generator, IncompatibleDraftError, MtadGreedyWarning
from mtad.tokenizer import Tokenizer
from tiny_tokenizer import write_tiny_tokenizer

METHODS = ["ar", "sps", "mtad", "mtad-tree"]
SAMPLED = dict(temperature=1.0, top_k=10, top_p=0.9)
CHAT = [{"role": "user", "content": "the world is good"}]


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Any:
    """One engine thread while this module runs: on a machine shared with other jobs a
    spinning 2-thread OpenMP team makes each small forward up to ~100x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def gen(tiny_dirs: dict[str, Path]) -> Generator:
    """Tiny target with a different tiny draft (same vocabulary)."""
    return mtad.load(tiny_dirs["target"], draft_dir=tiny_dirs["draft"])


@pytest.fixture(scope="module")
def self_gen(gen: Generator) -> Generator:
    """The target as its own draft: every draft token is accepted, so each step of
    sps / mtad / mtad-tree emits gamma + 1 tokens. EOS is switched off (tests set it)."""
    g = Generator(gen.model, gen.tokenizer, draft=gen.model)
    g.eos_token_ids = frozenset()
    return g


def _quiet(g: Generator, **kw: Any) -> mtad.GenerationResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MtadGreedyWarning)
        return g.generate(**kw)


def _stream(g: Generator, **kw: Any) -> tuple[list[str], mtad.GenerationResult]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MtadGreedyWarning)
        pieces = list(g.stream(**kw))
    assert g.last_result is not None
    return pieces, g.last_result


# -- every method: streaming, text, counters -----------------------------------------


@pytest.mark.parametrize("sampling", [SAMPLED, dict(temperature=0.0)], ids=["sampled", "greedy"])
@pytest.mark.parametrize("method", METHODS)
def test_stream_pieces_join_to_generated_text(gen: Generator, method: str, sampling: dict) -> None:
    kw = dict(messages=CHAT, max_new_tokens=40, seed=5, method=method, **sampling)
    result = _quiet(gen, **kw)
    pieces, streamed = _stream(gen, **kw)
    assert "".join(pieces) == result.text == streamed.text
    assert streamed.token_ids == result.token_ids
    assert all(pieces)  # no empty pieces
    assert result.method == method
    # The text is the decoded tokens (EOS and special tokens skipped).
    assert result.text.strip() == gen.tokenizer.decode(result.token_ids, skip_special_tokens=True).strip()
    n = len(result.token_ids)
    assert 1 <= n <= 40
    assert result.finish_reason == ("length" if n == 40 else "eos")
    c = result.counters
    assert c["steps"] == c["target_forwards"] >= 1
    assert c["tokens_per_target_forward"] == pytest.approx(n / c["target_forwards"])
    if method == "ar":
        assert c["drafted"] == c["accepted"] == c["draft_forwards"] == 0
        assert c["target_forwards"] == n
    else:
        assert 0 <= c["accepted"] <= c["drafted"] and c["draft_forwards"] > 0
        assert c["acceptance_rate"] == pytest.approx(c["accepted"] / c["drafted"])
    assert c["decode_tokens_per_s"] > 0 and c["tokens_per_s"] > 0
    assert c["total_seconds"] == pytest.approx(c["prefill_seconds"] + c["decode_seconds"])
    split = c["draft_seconds"] + c["verify_seconds"] + c["rollback_seconds"] + c["other_seconds"]
    assert 0 < split <= c["decode_seconds"] * 1.05 + 1e-3
    json.dumps(result.to_dict())  # serialisable as the command's --json prints it


@pytest.mark.parametrize("method", ["sps", "mtad", "mtad-tree"])
def test_greedy_methods_equal_ar(gen: Generator, method: str) -> None:
    # Greedy target and draft: SpS is exact, and MTAD accepts exactly the argmax-matching
    # prefix (LP = 0 there, -inf elsewhere), so every method reproduces AR token for token.
    ar = _quiet(gen, messages=CHAT, max_new_tokens=30, method="ar")
    other = _quiet(gen, messages=CHAT, max_new_tokens=30, method=method)
    assert other.token_ids == ar.token_ids and other.text == ar.text


@pytest.mark.parametrize("method", ["ar", "mtad", "mtad-tree"])
def test_seed_reproduces_and_varies(gen: Generator, method: str) -> None:
    def run(seed: int) -> list[int]:
        return gen.generate(prompt="the world", max_new_tokens=24, seed=seed, method=method, **SAMPLED).token_ids

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_draft_equal_to_target_accepts_everything(self_gen: Generator) -> None:
    for method in ("sps", "mtad", "mtad-tree"):
        r = self_gen.generate(prompt="the world", max_new_tokens=20, method=method, gamma=4, width=3, **SAMPLED)
        c = r.counters
        assert c["accepted"] == 16, (method, c)
        assert c["target_forwards"] == 4 and c["tokens_per_target_forward"] == 5.0
        # The tree drafts all W beams of every depth; a chain drafts gamma tokens.
        assert c["drafted"] == (4 * 3 * 4 if method == "mtad-tree" else 16)


# -- stopping inside a step -------------------------------------------------------------


@pytest.fixture(scope="module")
def full_run(self_gen: Generator) -> mtad.GenerationResult:
    # sps with draft = target: steps of 5 tokens.
    return self_gen.generate(prompt="the world", max_new_tokens=30, method="sps", gamma=4, seed=1, **SAMPLED)


@pytest.mark.parametrize("n", [1, 4, 5, 7, 12])
def test_max_new_tokens_cuts_inside_a_step(self_gen: Generator, full_run: mtad.GenerationResult, n: int) -> None:
    r = self_gen.generate(prompt="the world", max_new_tokens=n, method="sps", gamma=4, seed=1, **SAMPLED)
    assert r.token_ids == full_run.token_ids[:n]
    assert r.finish_reason == "length"
    assert r.counters["steps"] == math.ceil(n / 5)
    assert full_run.text.startswith(r.text)


def test_eos_inside_a_step(self_gen: Generator, full_run: mtad.GenerationResult) -> None:
    ids = full_run.token_ids
    k = ids.index(ids[7])  # the first occurrence of the token at index 7 (second step, third token)
    before = self_gen.generate(prompt="the world", max_new_tokens=k, method="sps", gamma=4, seed=1, **SAMPLED)
    g = Generator(self_gen.model, self_gen.tokenizer, draft=self_gen.model)
    g.eos_token_ids = frozenset({ids[k]})
    for method_kw in ({}, {"stream": True}):
        if method_kw:
            pieces, r = _stream(g, prompt="the world", max_new_tokens=30, method="sps", gamma=4, seed=1, **SAMPLED)
            assert "".join(pieces) == r.text
        else:
            r = g.generate(prompt="the world", max_new_tokens=30, method="sps", gamma=4, seed=1, **SAMPLED)
        assert r.finish_reason == "eos"
        assert r.token_ids == ids[: k + 1]  # the EOS token is kept in the ids ...
        assert r.text == before.text  # ... and not in the text
        assert r.counters["steps"] == k // 5 + 1


def test_stop_string_inside_a_step(self_gen: Generator, full_run: mtad.GenerationResult) -> None:
    tok = self_gen.tokenizer
    ids = full_run.token_ids
    k = next(i for i in range(6, len(ids)) if not tok.is_special(ids[i]))
    stop = " " + tok.decode([ids[k]])  # a whole word, as it appears in the text
    cut = full_run.text.find(stop)
    assert cut >= 0
    pieces, r = _stream(self_gen, prompt="the world", max_new_tokens=30, method="sps", seed=1, stop=[stop], **SAMPLED)
    assert r.finish_reason == "stop"
    assert "".join(pieces) == r.text == full_run.text[:cut]
    # The ids end with the token that completed the stop string.
    n = len(r.token_ids)
    assert r.token_ids == ids[:n]
    assert stop in tok.decode(ids[:n]) and stop not in tok.decode(ids[: n - 1])


def test_learned_positions_end_with_ar(tmp_path: Path) -> None:
    # OPT has a table of 128 positions: drafts near the end would run past it, so the last
    # tokens come from AR (one extra target pass re-reads the sequence).
    from tiny_models import VOCAB, save_tiny

    folder = save_tiny("opt_pre_ln", "float32", tmp_path)
    write_tiny_tokenizer(folder, VOCAB)
    g = mtad.load(folder, draft_dir=folder)
    g.eos_token_ids = frozenset()
    for method in ("sps", "mtad-tree"):
        r = g.generate(prompt="the world", max_new_tokens=126, method=method, gamma=4, **SAMPLED)
        assert r.prompt_tokens + len(r.token_ids) == 128
        assert r.counters["target_forwards"] == r.counters["steps"] + 1
        assert r.counters["accepted"] >= 100  # the draft is the target: all drafts accepted
    with pytest.raises(ValueError, match="exceeds the model's context of 128 tokens"):
        g.generate(prompt="the world", max_new_tokens=127, method="sps")


# -- method choice, warnings, errors ----------------------------------------------------


def test_auto_method_and_mtad_greedy_warning(gen: Generator, tiny_dirs: dict[str, Path]) -> None:
    assert gen.generate(prompt="the", max_new_tokens=3).method == "sps"
    assert gen.generate(prompt="the", max_new_tokens=3, **SAMPLED).method == "mtad"
    with pytest.warns(MtadGreedyWarning, match="no quality gain"):
        gen.generate(prompt="the", max_new_tokens=3, method="mtad")
    with pytest.warns(MtadGreedyWarning):
        gen.stream(prompt="the", max_new_tokens=3, method="mtad-tree")  # warns at the call
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gen.generate(prompt="the", max_new_tokens=3, method="mtad", **SAMPLED)
        gen.generate(prompt="the", max_new_tokens=3, method="sps")
    no_draft = mtad.load(tiny_dirs["target"])
    assert no_draft.generate(prompt="the", max_new_tokens=3).method == "ar"
    for method in ("sps", "mtad", "mtad-tree"):
        with pytest.raises(ValueError, match=f"method '{method}' needs a draft model"):
            no_draft.generate(prompt="the", method=method)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(method="beam"), "method must be one of auto, ar, sps, mtad, mtad-tree"),
        (dict(gamma=0), "gamma must be >= 1"),
        (dict(gamma=2.5), "gamma must be an integer"),
        (dict(width=0), "width must be >= 1"),
        (dict(tau=0), r"tau must be in \(0, 1\]"),
        (dict(tau=1.5), r"tau must be in \(0, 1\]"),
        (dict(draft_temperature=-1), "draft temperature must be >= 0"),
        (dict(draft_top_k=-2), "draft top_k must be >= 0"),
        (dict(draft_top_p=2.0), r"draft top_p must be in \[0, 1\]"),
        (dict(temperature=-0.5), "temperature must be >= 0"),
        (dict(max_new_tokens=0), "max_new_tokens must be >= 1"),
        (dict(seed=-1), "seed must be >= 0"),
        (dict(stop="x"), "stop must be a list"),
        (dict(max_new_tokens=300), "exceeds the model's context of 256 tokens"),
    ],
)
def test_bad_arguments_raise_at_the_call(gen: Generator, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        gen.generate(prompt="the world", **kwargs)
    with pytest.raises(ValueError, match=message):
        gen.stream(prompt="the world", **kwargs)  # before the first piece is asked for


def test_load_errors(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="model folder not found"):
        mtad.load(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="draft folder not found"):
        mtad.load(tiny_dirs["target"], draft_dir=tmp_path / "nope")
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(tiny_dirs["target"] / "config.json", bare)
    with pytest.raises(FileNotFoundError, match="no tokenizer.json or tokenizer.model"):
        mtad.load(bare)
    with pytest.raises(ValueError, match="dtype must be one of"):
        mtad.load(tiny_dirs["target"], dtype="float8")


def test_dtype_is_the_weight_storage(tiny_dirs: dict[str, Path]) -> None:
    g = mtad.load(tiny_dirs["target"], draft_dir=tiny_dirs["draft"], dtype="bfloat16")
    assert str(g.model.weight_dtype) == str(g.draft.weight_dtype) == "BFloat16"
    assert str(mtad.load(tiny_dirs["target"]).model.weight_dtype) == "Float"
    r = g.generate(prompt="the world", max_new_tokens=8)
    assert len(r.token_ids) >= 1 and r.method == "sps"


# -- draft compatibility ----------------------------------------------------------------


def _draft_copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).symlink_to(f) if f.name == "model.safetensors" else shutil.copy(f, dst)
    return dst


def _other_vocab_draft(root: Path) -> Path:
    import tiny_models

    old = tiny_models.VOCAB
    tiny_models.VOCAB = old + 5
    try:
        folder = tiny_models.save_tiny("llama_mha_untied", "float32", root)
    finally:
        tiny_models.VOCAB = old
    write_tiny_tokenizer(folder, old + 5)
    return folder


def test_incompatible_drafts_are_refused(gen: Generator, tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    from tiny_tokenizer import TINY_SPECIALS

    target, draft = tiny_dirs["target"], tiny_dirs["draft"]
    cases: list[tuple[Path, str]] = []

    d = _draft_copy(draft, tmp_path / "eos")
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    cfg["eos_token"] = "<|end|>"
    (d / "tokenizer_config.json").write_text(json.dumps(cfg))
    cases.append((d, "eos token id 6 vs 2"))

    d = _draft_copy(draft, tmp_path / "specials")
    write_tiny_tokenizer(d, 211, specials=[*TINY_SPECIALS[:-1], "<|tool|>"])
    cases.append((d, "special tokens differ .*'<\\|tool\\|>'=6"))

    d = _draft_copy(draft, tmp_path / "swapped")
    tj = json.loads((d / "tokenizer.json").read_text())
    v = tj["model"]["vocab"]
    v["the"], v["of"] = v["of"], v["the"]
    (d / "tokenizer.json").write_text(json.dumps(tj))
    cases.append((d, "2 tokens map to other ids .*'the'=8 vs 7"))

    cases.append((_other_vocab_draft(tmp_path / "vocab"), "vocabulary size 216 vs 211"))

    d = _draft_copy(draft, tmp_path / "no_tokenizer")
    (d / "tokenizer.json").unlink()
    (d / "tokenizer_config.json").unlink()
    cfg = json.loads((d / "config.json").read_text())
    cfg["eos_token_id"] = 5
    (d / "config.json").write_text(json.dumps(cfg))
    cases.append((d, "eos token id 5 vs 2"))

    for folder, message in cases:
        with pytest.raises(IncompatibleDraftError, match=message) as info:
            mtad.load(target, draft_dir=folder)
        assert str(folder) in str(info.value) and str(target) in str(info.value)
        assert isinstance(info.value, ValueError)

    # The same check guards a Generator built from loaded models.
    import mtad_ext

    other = mtad_ext.load_model(str(cases[3][0]))
    with pytest.raises(IncompatibleDraftError, match="vocabulary size 216 vs 211"):
        Generator(gen.model, gen.tokenizer, draft=other, draft_tokenizer=Tokenizer(cases[3][0]))
    # A draft folder without a tokenizer but with matching ids is accepted.
    d = _draft_copy(draft, tmp_path / "bare_ok")
    (d / "tokenizer.json").unlink()
    assert mtad.load(target, draft_dir=d).generate(prompt="the", max_new_tokens=4, method="sps").method == "sps"


# -- SmolLM2 with a real (weak) draft ---------------------------------------------------


@pytest.fixture(scope="module")
def smol(smollm2_dir: Path, smollm2_draft_dir: Path) -> Generator:
    return mtad.load(smollm2_dir, draft_dir=smollm2_draft_dir)


SMOL_CHAT = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.mark.smollm2
def test_smollm2_greedy_sps_equals_ar(smol: Generator) -> None:
    ar = smol.generate(messages=SMOL_CHAT, max_new_tokens=16, method="ar")
    pieces, sps = _stream(smol, messages=SMOL_CHAT, max_new_tokens=16, method="sps", gamma=4)
    assert sps.token_ids == ar.token_ids
    assert "".join(pieces) == sps.text == ar.text
    assert "Paris" in ar.text
    assert sps.counters["accepted"] > 0
    assert sps.counters["tokens_per_target_forward"] > 1.0
    assert ar.counters["tokens_per_target_forward"] == 1.0


@pytest.mark.smollm2
def test_smollm2_mtad_sampled_stream(smol: Generator) -> None:
    kw = dict(messages=SMOL_CHAT, max_new_tokens=16, method="mtad-tree", seed=0, **SAMPLED)
    result = smol.generate(**kw)
    pieces, streamed = _stream(smol, **kw)
    assert "".join(pieces) == streamed.text == result.text
    assert streamed.token_ids == result.token_ids
    assert result.text.strip() == smol.tokenizer.decode(result.token_ids, skip_special_tokens=True).strip()
    assert result.counters["accepted"] > 0


# -- ADED: a tri-gram table instead of a draft model --------------------------------------


def _fresh(gen: Generator, **kw: Any) -> Generator:
    """A Generator over the tiny target with its own tri-gram table (none is shared)."""
    return Generator(gen.model, gen.tokenizer, **kw)


def _table_file(gen: Generator, path: Path, texts: list[list[int]]) -> Path:
    """A table file from token sequences plus random noise (drafts that are partly right)."""
    import torch

    import mtad_ext

    g = torch.Generator().manual_seed(0)
    noise = [torch.randint(0, gen.vocab_size, (300,), generator=g).tolist() for _ in range(4)]
    mtad_ext.TrigramTable.build([*texts, *noise], vocab_size=gen.vocab_size).save(str(path))
    return path


@pytest.mark.parametrize("aded", [None, {"max_nodes": 6, "paths": 4}], ids=["defaults", "small-budget"])
@pytest.mark.parametrize("source", ["empty", "file"])
def test_greedy_aded_equals_greedy_ar(gen: Generator, tmp_path: Path, source: str, aded: dict | None) -> None:
    ar = gen.generate(messages=CHAT, max_new_tokens=40, method="ar")
    table = None
    if source == "file":
        # Another prompt's greedy text: right for some contexts, wrong for others.
        other = gen.generate(prompt="of the people", max_new_tokens=40, method="ar")
        table = _table_file(gen, tmp_path / "t.tri", [other.token_ids])
    g = _fresh(gen, table=table)
    result = g.generate(messages=CHAT, max_new_tokens=40, method="aded", aded=aded)
    pieces, streamed = _stream(g, messages=CHAT, max_new_tokens=40, method="aded", aded=aded)
    for r in (result, streamed):
        assert r.token_ids == ar.token_ids and r.text == ar.text
        assert r.method == "aded"
        c = r.counters
        assert c["draft_forwards"] == 0 and c["steps"] == c["target_forwards"]
        assert 0 < c["accepted"] <= c["drafted"]  # drafts were made and some were right
        assert c["tokens_per_target_forward"] == pytest.approx(len(r.token_ids) / c["target_forwards"])
    assert "".join(pieces) == ar.text


def test_aded_node_budget_beyond_the_default_fits_a_fixed_cache(gen: Generator) -> None:
    # The engine sizes a step's room for 64 nodes; a larger budget must not eat the tokens' room.
    ar = gen.generate(messages=CHAT, max_new_tokens=40, method="ar")
    n = ar.prompt_tokens + 40
    g = _fresh(gen, cache_capacity=n)
    r = g.generate(messages=CHAT, max_new_tokens=40, method="aded", aded={"max_nodes": 300})
    assert r.token_ids == ar.token_ids
    assert g.decoder.aded_params.max_nodes == 300


def test_aded_sampling_is_seeded(gen: Generator, tmp_path: Path) -> None:
    own = gen.generate(messages=CHAT, max_new_tokens=60, method="ar", seed=9, **SAMPLED)
    path = _table_file(gen, tmp_path / "t.tri", [own.token_ids])

    def run(seed: int) -> mtad.GenerationResult:
        # A fresh table each time: the same start state for the same seed. A fixed budget, so
        # that drafts are verified whatever the tiny model's pass costs say.
        return _fresh(gen, table=path).generate(messages=CHAT, max_new_tokens=30, method="aded", seed=seed,
                                                aded={"max_nodes": 16}, **SAMPLED)  # fmt: skip

    first = run(3)
    assert first.token_ids == run(3).token_ids
    assert first.token_ids != run(4).token_ids
    assert first.counters["drafted"] > 0
    assert first.text.strip() == gen.tokenizer.decode(first.token_ids, skip_special_tokens=True).strip()


def test_aded_table_adapts_across_calls_and_saves(gen: Generator, tmp_path: Path) -> None:
    """One table serves every request of a Generator: the same prompt again is decoded with
    more accepted tokens per target pass, and the saved table carries what was learned."""
    ar = gen.generate(prompt="of the", max_new_tokens=40, method="ar")
    g = _fresh(gen)
    kw: dict[str, Any] = dict(prompt="of the", max_new_tokens=40, method="aded")
    first, second = g.generate(**kw), g.generate(**kw)
    assert first.token_ids == second.token_ids == ar.token_ids
    rate = [r.counters["accepted"] / r.counters["target_forwards"] for r in (first, second)]
    assert rate[1] > rate[0], rate
    table = g.table
    assert table.num_entries > 0
    g.save_table(tmp_path / "learned.tri")
    assert g.table is table  # saving does not replace the table in use
    # A Generator loaded with the saved table decodes like the one that learned it.
    # adapt_prompt: the learner's default (its table started empty); a fixed node budget: the
    # automatic one follows each loaded model's measured pass costs, which differ run to run.
    same = dict(kw, aded={"adapt_prompt": True, "max_nodes": 8})
    third = g.generate(**same)
    again = mtad.load(gen.tokenizer.model_dir, table=tmp_path / "learned.tri").generate(**same)
    assert again.token_ids == third.token_ids
    for key in ("accepted", "drafted", "target_forwards"):
        assert again.counters[key] == third.counters[key], key
    # A table named per call becomes the Generator's table, loaded once and then adapted.
    g2 = _fresh(gen)
    g2.generate(**kw, table=tmp_path / "learned.tri")
    loaded = g2.table
    g2.generate(**kw)
    g2.generate(**kw, table=tmp_path / "learned.tri")
    assert g2.table is loaded


def test_aded_table_with_another_vocabulary_is_refused(gen: Generator, tiny_dirs: dict[str, Path],
                                                       tmp_path: Path) -> None:  # fmt: skip
    import mtad_ext

    path = tmp_path / "v50.tri"
    mtad_ext.TrigramTable.build([[1, 2, 3, 4, 5]], vocab_size=50).save(str(path))
    message = "built for a vocabulary of 50 tokens, but the model has 211"
    with pytest.raises(mtad_ext.InputError, match=message):
        mtad.load(tiny_dirs["target"], table=path)
    g = _fresh(gen)
    with pytest.raises(ValueError, match=message):
        g.generate(prompt="the", method="aded", table=path)
    with pytest.raises(ValueError, match=message):
        g.stream(prompt="the", method="aded", table=mtad_ext.TrigramTable(50))
    with pytest.raises(FileNotFoundError, match="tri-gram table not found"):
        mtad.load(tiny_dirs["target"], table=tmp_path / "nope.tri")
    with pytest.raises(FileNotFoundError, match="no such tri-gram table file"):
        g.generate(prompt="the", method="aded", table=tmp_path / "nope.tri")
    # The Generator's own table is untouched by the refused ones.
    assert g.generate(prompt="the", method="aded", max_new_tokens=4).method == "aded"
    assert g.table.vocab_size == 211


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(aded={"depth": 0}), r"aded depth must be in \[1, 64\], got 0"),
        (dict(aded={"max_nodes": 5000}), r"aded max_nodes must be in \[0, 4096\], got 5000"),
        (dict(aded={"simulations": -1}), r"aded simulations must be in \[0, 1000000\]"),
        (dict(aded={"paths": 2.5}), "aded paths must be an integer"),
        (dict(aded={"window": True}), "aded window must be an integer"),
        (dict(aded={"c2": 0}), "aded c2 must be a finite number > 0"),
        (dict(aded={"increment": float("nan")}), "aded increment must be a finite number >= 0"),
        (dict(aded={"cap": -1.0}), "aded cap must be a finite number > 0"),
        (dict(aded={"reward": "visits"}), "aded reward must be 'table' or 'public'"),
        (dict(aded={"extend": 1}), "aded extend must be True or False"),
        (dict(aded={"adapt_prompt": "yes"}), "aded adapt_prompt must be True, False or None"),
        (dict(aded={"dept": 3}), "unknown ADED option.s. dept; known: "),
        (dict(aded=[("depth", 2)]), "aded must be an AdedOptions or a mapping"),
        (dict(table=123), "table must be a tri-gram table file path or a mtad_ext.TrigramTable"),
    ],
)
def test_bad_aded_arguments_raise_at_the_call(gen: Generator, kwargs: dict, message: str) -> None:
    g = _fresh(gen)
    with pytest.raises(ValueError, match=message):
        g.generate(prompt="the world", method="aded", **kwargs)
    with pytest.raises(ValueError, match=message):
        g.stream(prompt="the world", method="aded", **kwargs)


def test_aded_arguments_need_method_aded(gen: Generator, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="a tri-gram table is for method 'aded'; the method is 'ar'"):
        gen.generate(prompt="the", method="ar", table=tmp_path / "t.tri")
    with pytest.raises(ValueError, match="ADED options are for method 'aded'; the method is 'auto'"):
        gen.generate(prompt="the", aded={"depth": 2})


def test_aded_options_defaults_are_the_engines() -> None:
    import mtad_ext

    names = [f for f in AdedOptions.__dataclass_fields__ if f not in ("adapt_prompt", "lookup")]
    engine = mtad_ext.AdedParams()
    assert {n: getattr(AdedOptions().native(), n) for n in names} == {n: getattr(engine, n) for n in names}
    assert engine.adapt_prompt is False and AdedOptions().adapt_prompt is None  # None: decided per table
    # The engine's defaults are the paper's ADED; the front end adds the context-lookup path.
    assert engine.lookup == 0 and AdedOptions().lookup == 6 and AdedOptions().native().lookup == 6
    custom = AdedOptions(depth=5, max_nodes=9, reward="public", adapt_prompt=True).native()
    assert (custom.depth, custom.max_nodes, custom.reward, custom.adapt_prompt) == (5, 9, "public", True)
    with pytest.raises(ValueError, match="aded depth"):
        AdedOptions(depth=65)


def test_aded_with_learned_positions_ends_with_ar(tmp_path: Path) -> None:
    # OPT has 128 positions: a draft trie near the end would reach past them.
    from tiny_models import VOCAB, save_tiny

    folder = save_tiny("opt_pre_ln", "float32", tmp_path)
    write_tiny_tokenizer(folder, VOCAB)
    g = mtad.load(folder)
    g.eos_token_ids = frozenset()
    ar = g.generate(prompt="the world", max_new_tokens=126, method="ar")
    r = g.generate(prompt="the world", max_new_tokens=126, method="aded")
    assert r.token_ids == ar.token_ids
    assert r.prompt_tokens + len(r.token_ids) == 128
    assert r.counters["target_forwards"] == r.counters["steps"] + 1  # one AR prompt pass at the handover
    assert r.counters["accepted"] > 0


@pytest.mark.smollm2
def test_smollm2_greedy_aded_equals_ar(smol: Generator) -> None:
    ar = smol.generate(messages=SMOL_CHAT, max_new_tokens=32, method="ar")
    g = Generator(smol.model, smol.tokenizer)  # no table: an empty one that learns from the prompt
    pieces, aded = _stream(g, messages=SMOL_CHAT, max_new_tokens=32, method="aded", aded={"max_nodes": 16})
    assert aded.token_ids == ar.token_ids
    assert "".join(pieces) == aded.text == ar.text
    assert "Paris" in aded.text
    assert aded.counters["drafted"] > 0 and aded.counters["draft_forwards"] == 0
