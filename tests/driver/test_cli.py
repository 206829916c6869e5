"""The `mtad` command end to end: generate (streamed and --json) with every method, chat
through a pipe, convert a GGUF file, --help, and one-line errors with exit code 2.
Tiny random folders for the logic (their output is checked against the Python API), and
SmolLM2 with its layer-dropped draft through a subprocess."""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import mtad
import pytest
from mtad import Generator
from mtad.cli import _build_parser, main

SAMPLED = ["--temperature", "1", "--top-k", "10", "--top-p", "0.9", "--seed", "3"]
SAMPLED_KW = dict(temperature=1.0, top_k=10, top_p=0.9, seed=3)
SUMMARY = re.compile(
    r"^\[(\d+) tokens \((length|eos|stop)\) in [\d.]+ s: [\d.]+ tokens/s; method ([a-z-]+): "
    r"([\d.]+) tokens per target forward(; (\d+)/(\d+) draft tokens accepted \(\d+ %\))?; "
    r"prefill \d+ tokens in \d+ ms\]$"
)


# One engine thread, in the commands run here and in this process (fixture below): on a
# machine shared with other jobs a spinning 2-thread OpenMP team makes each small forward
# up to ~100x slower. Both sides use the same thread count, so outputs compare exactly.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Any:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run_cli(*args: Any, input: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mtad", *map(str, args)],
        input=input, capture_output=True, text=True, timeout=timeout, env=ENV,
    )  # fmt: skip


def user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


@pytest.fixture(scope="module")
def gen(tiny_dirs: dict[str, Path]) -> Generator:
    return mtad.load(tiny_dirs["target"], draft_dir=tiny_dirs["draft"])


# -- generate -------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["ar", "sps", "mtad", "mtad-tree"])
def test_generate_streams_text_and_figures(
    gen: Generator, tiny_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str], method: str
) -> None:
    args = ["generate", "the world", "--model", tiny_dirs["target"], "--draft", tiny_dirs["draft"]]
    rc = main([*map(str, args), "--method", method, "--max-new-tokens", "20", "--gamma", "3", *SAMPLED])
    out, err = capsys.readouterr()
    assert rc == 0
    want = gen.generate(messages=[user("the world")], max_new_tokens=20, method=method, gamma=3, **SAMPLED_KW)
    assert out == want.text + "\n"
    m = SUMMARY.match(err.strip().splitlines()[-1])
    assert m, err
    assert int(m.group(1)) == len(want.token_ids) and m.group(3) == method
    assert float(m.group(4)) == pytest.approx(want.counters["tokens_per_target_forward"], abs=0.006)
    if method == "ar":
        assert m.group(5) is None
    else:
        assert (int(m.group(6)), int(m.group(7))) == (want.counters["accepted"], want.counters["drafted"])


def test_generate_json_matches_api(gen: Generator, tiny_dirs: dict[str, Path]) -> None:
    proc = run_cli(
        "generate", "is it good", "--model", tiny_dirs["target"], "--draft", tiny_dirs["draft"],
        "--method", "mtad", "--width", "3", "--tau", "0.3", "--draft-temperature", "0.7", "--draft-top-k", "5",
        "--max-new-tokens", "16", "--json", *SAMPLED,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    want = gen.generate(
        messages=[user("is it good")], max_new_tokens=16, method="mtad", width=3, tau=0.3,
        draft_temperature=0.7, draft_top_k=5, **SAMPLED_KW,
    )  # fmt: skip
    assert got["text"] == want.text and got["token_ids"] == want.token_ids
    assert got["method"] == "mtad" and got["finish_reason"] == want.finish_reason
    c = got["counters"]
    for key in ("tokens_per_s", "decode_tokens_per_s", "tokens_per_target_forward", "acceptance_rate",
                "accepted", "drafted", "target_forwards", "draft_seconds", "verify_seconds"):  # fmt: skip
        assert key in c
    assert c["tokens_per_target_forward"] == pytest.approx(len(want.token_ids) / c["target_forwards"])
    assert (c["accepted"], c["drafted"]) == (want.counters["accepted"], want.counters["drafted"])


def test_generate_subprocess_stream_raw_prompt_and_stop(gen: Generator, tiny_dirs: dict[str, Path]) -> None:
    full = gen.generate(prompt="the world", max_new_tokens=24, method="sps", **SAMPLED_KW)
    words = full.text.split()
    stop = " " + words[len(words) // 2]
    proc = run_cli(
        "generate", "the world", "--no-chat", "--model", tiny_dirs["target"], "--draft", tiny_dirs["draft"],
        "--method", "sps", "--max-new-tokens", "24", "--stop", stop, *SAMPLED,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == full.text[: full.text.find(stop)] + "\n"
    assert "(stop)" in proc.stderr and "method sps" in proc.stderr


def test_generate_dtype_and_greedy_defaults(tiny_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["generate", "the world", "--model", str(tiny_dirs["target"]), "--dtype", "bfloat16",
               "--max-new-tokens", "12", "--json"])  # fmt: skip
    got = json.loads(capsys.readouterr().out)
    assert rc == 0
    want = mtad.load(tiny_dirs["target"], dtype="bfloat16").generate(messages=[user("the world")], max_new_tokens=12)
    assert got["token_ids"] == want.token_ids and got["method"] == "ar"
    assert got["counters"]["tokens_per_target_forward"] == 1.0


def test_generate_aded_equals_ar_and_saves_the_table(
    gen: Generator, tiny_dirs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import mtad_ext

    target = str(tiny_dirs["target"])
    saved = tmp_path / "tables" / "learned.tri"  # the folder is made
    # A fixed node budget here and below: the automatic one follows each loaded model's measured
    # pass costs, so two loads could draft differently (the tokens would still be AR's).
    rc = main(["generate", "the world", "--model", target, "--draft", str(tiny_dirs["draft"]), "--method", "aded",
               "--max-new-tokens", "30", "--max-nodes", "8", "--save-table", str(saved)])  # fmt: skip
    out, err = capsys.readouterr()
    assert rc == 0, err
    ar = gen.generate(messages=[user("the world")], max_new_tokens=30, method="ar")
    assert out == ar.text + "\n"
    assert "--method aded does not use the draft model" in err
    # The same run through the API (a fresh, empty table) gives the figures the summary shows.
    api = Generator(gen.model, gen.tokenizer).generate(messages=[user("the world")], max_new_tokens=30, method="aded",
                                                       aded={"max_nodes": 8})  # fmt: skip
    m = SUMMARY.match(err.strip().splitlines()[-1])
    assert m and m.group(3) == "aded", err
    assert (int(m.group(6)), int(m.group(7))) == (api.counters["accepted"], api.counters["drafted"])
    assert f"[saved the tri-gram table to {saved}:" in err
    learned = mtad_ext.TrigramTable.load(str(saved), vocab_size=gen.vocab_size)
    assert learned.num_entries > 0
    # The saved table drafts the same text again, with more accepted tokens per pass.
    rc = main(["generate", "the world", "--model", target, "--method", "aded", "--table", str(saved),
               "--max-nodes", "8", "--max-new-tokens", "30", "--json"])  # fmt: skip
    got = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert got["token_ids"] == ar.token_ids and got["method"] == "aded"
    assert got["counters"]["tokens_per_target_forward"] > api.counters["tokens_per_target_forward"]


def test_chat_aded_keeps_one_table_and_saves_it_at_exit(gen: Generator, tiny_dirs: dict[str, Path],
                                                         tmp_path: Path) -> None:  # fmt: skip
    import mtad_ext

    saved = tmp_path / "chat.tri"
    # A fixed node budget, as above: the CLI's process measures its own pass costs.
    proc = run_cli("chat", "--model", tiny_dirs["target"], "--method", "aded", "--max-new-tokens", "16",
                   "--max-nodes", "8", "--save-table", saved, input="the world\nis good\n")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    # The API with one Generator (one table) over the same conversation.
    api = Generator(gen.model, gen.tokenizer)
    r1 = api.generate(messages=[user("the world")], max_new_tokens=16, method="aded", aded={"max_nodes": 8})
    history = [user("the world"), {"role": "assistant", "content": r1.text}, user("is good")]
    r2 = api.generate(messages=history, max_new_tokens=16, method="aded", aded={"max_nodes": 8})
    assert proc.stdout.splitlines() == [r1.text, r2.text]
    figures = [(int(m.group(6)), int(m.group(7))) for line in proc.stderr.splitlines() if (m := SUMMARY.match(line))]
    assert figures == [(r.counters["accepted"], r.counters["drafted"]) for r in (r1, r2)]
    learned = mtad_ext.TrigramTable.load(str(saved), vocab_size=gen.vocab_size, max_successors=0)
    assert learned.num_entries == api.table.num_entries > 0
    toks = api.decoder.tokens
    for a, b in zip(toks, toks[1:], strict=False):
        assert learned.lookup(a, b) == api.table.lookup(a, b)


def test_mtad_at_temperature_zero_warns(tiny_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["generate", "the", "--model", str(tiny_dirs["target"]), "--draft", str(tiny_dirs["draft"]),
               "--method", "mtad-tree", "--temperature", "0", "--max-new-tokens", "4"])  # fmt: skip
    err = capsys.readouterr().err
    assert rc == 0
    assert err.startswith("mtad: warning: method mtad-tree with a greedy target (temperature 0) gives no quality gain")


@pytest.mark.parametrize("method", ["mtad", "mtad-tree"])
def test_mtad_without_sampling_options_samples_with_the_papers_settings(
    gen: Generator, tiny_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str], method: str
) -> None:
    base = ["generate", "the world", "--model", str(tiny_dirs["target"]), "--draft", str(tiny_dirs["draft"]),
            "--method", method, "--max-new-tokens", "16", "--seed", "5", "--json"]  # fmt: skip
    assert main(base) == 0
    out, err = capsys.readouterr()
    paper = gen.generate(messages=[user("the world")], max_new_tokens=16, seed=5, method=method,
                         temperature=1.0, top_k=10, top_p=0.9)  # fmt: skip
    assert json.loads(out)["token_ids"] == paper.token_ids
    assert "warning" not in err
    # Explicit settings are kept, also one of three: T = 0.5 with the paper's top-k and top-p.
    assert main([*base, "--temperature", "0.5"]) == 0
    half = gen.generate(messages=[user("the world")], max_new_tokens=16, seed=5, method=method,
                        temperature=0.5, top_k=10, top_p=0.9)  # fmt: skip
    assert json.loads(capsys.readouterr().out)["token_ids"] == half.token_ids
    # Other methods stay greedy by default.
    assert main([*base[:7], "sps", *base[8:]]) == 0
    greedy = gen.generate(messages=[user("the world")], max_new_tokens=16, method="ar")
    assert json.loads(capsys.readouterr().out)["token_ids"] == greedy.token_ids


def test_auto_method_says_what_it_chose_when_sampling(
    tiny_dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    target, draft = str(tiny_dirs["target"]), str(tiny_dirs["draft"])
    common = ["--max-new-tokens", "4", "--json"]
    assert main(["generate", "the", "--model", target, "--draft", draft, *common, *SAMPLED]) == 0
    assert "mtad: --method auto chose mtad (not lossless" in capsys.readouterr().err
    assert main(["generate", "the", "--model", target, *common, *SAMPLED]) == 0
    assert "mtad: --method auto chose ar (lossless" in capsys.readouterr().err
    assert main(["generate", "the", "--model", target, "--draft", draft, *common]) == 0  # greedy: sps, silent
    assert "chose" not in capsys.readouterr().err
    proc = run_cli("generate", "--help")
    text = re.sub(r"-\s+", "-", " ".join(proc.stdout.split()))  # argparse wraps lines at hyphens too
    assert "mtad and mtad-tree sample with the MTAD paper's settings (T=1, top-k 10, top-p 0.9)" in text


# -- chat -----------------------------------------------------------------------------


def test_chat_keeps_history_and_resets(gen: Generator, tiny_dirs: dict[str, Path]) -> None:
    lines = ["the world", "is good", "/reset", "is good", "/exit", "never read"]
    proc = run_cli(
        "chat", "--model", tiny_dirs["target"], "--draft", tiny_dirs["draft"], "--method", "mtad",
        "--max-new-tokens", "12", *SAMPLED, input="\n".join(lines) + "\n",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    kw: dict[str, Any] = dict(max_new_tokens=12, method="mtad", **SAMPLED_KW)
    r1 = gen.generate(messages=[user("the world")], **kw)
    r2 = gen.generate(messages=[user("the world"), {"role": "assistant", "content": r1.text}, user("is good")], **kw)
    r3 = gen.generate(messages=[user("is good")], **kw)
    assert r2.text != r3.text  # the history changes the reply
    assert proc.stdout.splitlines() == [r1.text, r2.text, r3.text]
    err = proc.stderr.splitlines()
    assert sum(bool(SUMMARY.match(line)) for line in err) == 3
    assert "(conversation cleared)" in err


def test_chat_ends_at_end_of_input(tiny_dirs: dict[str, Path]) -> None:
    proc = run_cli("chat", "--model", tiny_dirs["target"], "--max-new-tokens", "5", "--system", "be good",
                   input="the\n\n/help\nof")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 2  # two messages; the blank line and /help are not sent
    assert "/reset clears the conversation" in proc.stderr


# -- convert --------------------------------------------------------------------------


def _gguf_header(path: Path, arch: str) -> Path:
    """A GGUF file with only general.architecture (enough for the checks before conversion)."""
    key, val = b"general.architecture", arch.encode()
    data = b"GGUF" + struct.pack("<IQQ", 3, 0, 1)
    data += struct.pack("<Q", len(key)) + key + struct.pack("<IQ", 8, len(val)) + val
    path.write_bytes(data)
    return path


def _permute(w: Any, n_head: int) -> Any:
    # llama.cpp's convert_hf_to_gguf permutation of q / k rows (transformers undoes it).
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _tiny_llama_gguf(path: Path) -> Any:
    """Write the tiny random Llama `llama_mha_untied` as an F32 GGUF with a small
    sentencepiece-style vocabulary; returns the transformers model (the oracle)."""
    gguf = pytest.importorskip("gguf")
    from tiny_models import VOCAB, build_hf_model

    model = build_hf_model("llama_mha_untied")
    cfg = model.config
    toks = ["<unk>", "<s>", "</s>", "\u2581", *"abcdefghijklmnopqrstuvwxyz"]
    for word in "the of and to in is it that for on with as was at by be this are from or".split():
        toks += [t for i in range(1, len(word) + 1) if (t := "\u2581" + word[:i]) not in toks]
    toks += [f"<extra{i}>" for i in range(VOCAB - len(toks))]
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-llama")
    w.add_block_count(cfg.num_hidden_layers)
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_attention_heads)
    w.add_head_count_kv(cfg.num_key_value_heads)
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    w.add_vocab_size(VOCAB)
    w.add_file_type(0)
    w.add_tokenizer_model("llama")
    w.add_token_list(toks)
    w.add_token_scores([0.0, 0.0, 0.0] + [-float(i) for i in range(VOCAB - 3)])
    w.add_token_types([2, 3, 3] + [1] * (VOCAB - 3))
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    sd = {k: v.detach().float().numpy() for k, v in model.state_dict().items()}
    n_head = cfg.num_attention_heads
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        names = {
            "attn_q": _permute(sd[p + "self_attn.q_proj.weight"], n_head),
            "attn_k": _permute(sd[p + "self_attn.k_proj.weight"], n_head),
            "attn_v": sd[p + "self_attn.v_proj.weight"],
            "attn_output": sd[p + "self_attn.o_proj.weight"],
            "ffn_gate": sd[p + "mlp.gate_proj.weight"],
            "ffn_up": sd[p + "mlp.up_proj.weight"],
            "ffn_down": sd[p + "mlp.down_proj.weight"],
            "attn_norm": sd[p + "input_layernorm.weight"],
            "ffn_norm": sd[p + "post_attention_layernorm.weight"],
        }
        for name, t in names.items():
            w.add_tensor(f"blk.{i}.{name}.weight", t)
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    w.add_tensor("output.weight", sd["lm_head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return model


def test_convert_gguf_to_a_folder_the_engine_runs(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    import torch

    import mtad_ext

    reference = _tiny_llama_gguf(tmp_path / "tiny.gguf")
    out = tmp_path / "converted"
    proc = run_cli("convert", tmp_path / "tiny.gguf", out)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    assert "Llama model 'tiny-llama', 3 layers" in proc.stderr
    model = mtad_ext.load_model(str(out))
    ids = torch.tensor([1, 5, 9, 40, 77, 3, 100, 210])
    with torch.no_grad():
        want = reference(ids[None]).logits[0]
    torch.testing.assert_close(model.forward(model.new_cache(16), ids), want, atol=2e-5, rtol=1e-4)
    tok = mtad.Tokenizer(out)
    ids_text = tok.encode("the of that")
    assert [tok.id_to_token(i) for i in ids_text] == ["<s>", "\u2581the", "\u2581of", "\u2581that"]
    assert tok.decode(ids_text, skip_special_tokens=True) == "the of that"
    # A second conversion into the now non-empty folder needs --force.
    proc = run_cli("convert", tmp_path / "tiny.gguf", out)
    assert proc.returncode == 2 and "is not empty; give --force" in proc.stderr


# -- help and errors ------------------------------------------------------------------


def test_help_explains_every_option_and_its_default() -> None:
    parser = _build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    mine = ("generate", "chat", "fetch-default", "convert")
    assert set(mine) <= set(subparsers.choices)
    for name in mine:
        sub = subparsers.choices[name]
        assert sub.description, name
        for action in sub._actions:
            if action.dest == "help":
                continue
            assert action.help, (name, action.dest)
            if action.option_strings:
                assert "default" in action.help.lower(), (name, action.option_strings)
    proc = run_cli("generate", "--help")
    assert proc.returncode == 0
    for option in ("--method", "--draft", "--gamma", "--width", "--tau", "--draft-temperature", "--draft-top-k",
                   "--draft-top-p", "--dtype", "--json", "--stop", "--seed", "--table", "--save-table",
                   "--simulations", "--depth", "--max-nodes", "--paths", "--adapt-prompt", "--no-adapt"):  # fmt: skip
        assert option in proc.stdout


@pytest.fixture(scope="module")
def bad_dirs(tiny_dirs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cli_errors")
    bare = root / "bare"  # weights and config, no tokenizer
    bare.mkdir()
    shutil.copy(tiny_dirs["target"] / "config.json", bare)
    (bare / "model.safetensors").symlink_to(tiny_dirs["target"] / "model.safetensors")
    no_template = root / "no_template"
    shutil.copytree(tiny_dirs["target"], no_template)
    cfg = json.loads((no_template / "tokenizer_config.json").read_text())
    del cfg["chat_template"]
    (no_template / "tokenizer_config.json").write_text(json.dumps(cfg))
    eos_draft = root / "eos_draft"
    shutil.copytree(tiny_dirs["draft"], eos_draft)
    cfg = json.loads((eos_draft / "tokenizer_config.json").read_text())
    cfg["eos_token"] = "<|end|>"
    (eos_draft / "tokenizer_config.json").write_text(json.dumps(cfg))
    (root / "not.gguf").write_text("plain text\n")
    _gguf_header(root / "gpt2.gguf", "gpt2")
    import mtad_ext

    mtad_ext.TrigramTable.build([[1, 2, 3, 4]], vocab_size=50).save(str(root / "v50.tri"))
    return {"T": tiny_dirs["target"], "D": tiny_dirs["draft"], "root": root, "bare": bare,
            "no_template": no_template, "eos_draft": eos_draft}  # fmt: skip


ERRORS = [
    (["generate", "hi", "--model", "{root}/nope"], "model folder not found: {root}/nope"),
    (["chat", "--model", "{root}/nope"], "model folder not found: {root}/nope"),
    (["generate", "hi", "--model", "{bare}"], "no tokenizer.json or tokenizer.model in {bare}"),
    (["generate", "hi", "--model", "{T}", "--draft", "{root}/nope"], "draft folder not found: {root}/nope"),
    (["generate", "hi", "--model", "{T}", "--draft", "{eos_draft}"],
     "draft {eos_draft} is incompatible with target {T} (draft vs target): eos token id 6 vs 2"),
    (["chat", "--model", "{T}", "--draft", "{eos_draft}"], "is incompatible with target"),
    (["generate", "hi", "--model", "{T}", "--method", "sps"], "method 'sps' needs a draft model"),
    (["chat", "--model", "{T}", "--method", "mtad"], "method 'mtad' needs a draft model"),
    (["chat", "--model", "{no_template}"], "has no chat template; use `mtad generate --no-chat` instead"),
    (["generate", "hi", "--temperature", "-1"], "temperature must be >= 0 (0 = greedy), got -1.0"),
    (["generate", "hi", "--top-p", "1.5"], "top_p must be in [0, 1] (0 or 1 = keep all), got 1.5"),
    (["generate", "hi", "--top-k", "-3"], "top_k must be >= 0 (0 = keep all), got -3"),
    (["generate", "hi", "--top-k", "abc"], "argument --top-k: invalid int value: 'abc'"),
    (["generate", "hi", "--max-new-tokens", "0"], "max_new_tokens must be >= 1, got 0"),
    (["generate", "hi", "--gamma", "0"], "gamma must be >= 1, got 0"),
    (["generate", "hi", "--gamma", "often"], "argument --gamma: expected a number or auto, got 'often'"),
    (["generate", "hi", "--max-gamma", "40"], "max_gamma must be <= 32, got 40"),
    (["chat", "--width", "0"], "width must be >= 1, got 0"),
    (["generate", "hi", "--tau", "0"], "tau must be in (0, 1], got 0.0"),
    (["generate", "hi", "--tau", "1.5"], "tau must be in (0, 1], got 1.5"),
    (["generate", "hi", "--draft-top-p", "3"], "draft top_p must be in [0, 1]"),
    (["generate", "hi", "--draft-temperature", "-2"], "draft temperature must be >= 0"),
    (["generate", "hi", "--seed", "-1"], "seed must be >= 0, got -1"),
    (["generate", "hi", "--dtype", "float8"], "argument --dtype: invalid choice: 'float8'"),
    (["generate", "hi", "--method", "beam"], "argument --method: invalid choice: 'beam'"),
    (["generate", "hi", "--model", "{T}", "--no-chat", "--system", "x"], "--system needs the chat template"),
    (["generate", "hi", "--model", "{T}", "--method", "aded", "--table", "{root}/v50.tri"],
     "{root}/v50.tri: the tri-gram table was built for a vocabulary of 50 tokens, but the model has 211"),
    (["chat", "--model", "{T}", "--method", "aded", "--table", "{root}/v50.tri"], "but the model has 211"),
    (["generate", "hi", "--method", "aded", "--table", "{root}/nope.tri"], "tri-gram table not found: {root}/nope.tri"),
    (["generate", "hi", "--model", "{T}", "--method", "aded", "--table", "{root}/not.gguf"],
     "{root}/not.gguf: not a tri-gram table file"),
    (["generate", "hi", "--table", "{root}/v50.tri"], "--table needs --method aded"),
    (["chat", "--method", "ar", "--table", "{root}/v50.tri", "--save-table", "x.tri"],
     "--table and --save-table need --method aded"),
    (["generate", "hi", "--method", "aded", "--save-table", "{root}"], "is a folder; give a file name"),
    (["generate", "hi", "--method", "aded", "--depth", "0"], "aded depth must be in [1, 64], got 0"),
    (["chat", "--method", "aded", "--max-nodes", "5000"], "aded max_nodes must be in [0, 4096], got 5000"),
    (["generate", "hi", "--method", "aded", "--adapt-prompt", "yes"], "argument --adapt-prompt: invalid choice"),
    (["generate", "hi", "--model", "{T}", "--max-new-tokens", "300"],
     "plus max_new_tokens (300) exceeds the model's context of 256 tokens"),
    (["generate"], "the following arguments are required: PROMPT"),
    (["frobnicate"], "argument COMMAND: invalid choice: 'frobnicate'"),
    (["convert", "{root}/missing.gguf", "{root}/out"], "GGUF file not found: {root}/missing.gguf"),
    (["convert", "{root}/not.gguf", "{root}/out"], "{root}/not.gguf is not a GGUF file"),
    (["convert", "{root}/gpt2.gguf", "{root}/out"], "holds a 'gpt2' model; convert handles Llama GGUF files only"),
]


@pytest.mark.parametrize("args, message", ERRORS, ids=[" ".join(a)[:60] for a, _ in ERRORS])
def test_errors_are_one_line_with_exit_code_2(bad_dirs: dict[str, Path], args: list[str], message: str) -> None:
    fill = {k: str(v) for k, v in bad_dirs.items()}
    proc = run_cli(*[a.format(**fill) for a in args], input="hello\n")
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("mtad: error: ")
    assert message.format(**fill) in lines[0]
    assert proc.stdout == ""


def test_no_command_prints_help_and_fails() -> None:
    proc = run_cli()
    assert proc.returncode == 2
    assert "generate" in proc.stderr and "chat" in proc.stderr and "convert" in proc.stderr


# -- SmolLM2 through the command ------------------------------------------------------


@pytest.mark.smollm2
def test_smollm2_generate_command(smollm2_dir: Path, smollm2_draft_dir: Path) -> None:
    question = "What is the capital of France?"
    sps = run_cli("generate", question, "--model", smollm2_dir, "--draft", smollm2_draft_dir, "--method", "sps",
                  "--max-new-tokens", "12")  # fmt: skip
    assert sps.returncode == 0, sps.stderr
    assert "Paris" in sps.stdout
    m = SUMMARY.match(sps.stderr.strip().splitlines()[-1])
    assert m and m.group(3) == "sps" and int(m.group(6)) > 0, sps.stderr
    ar = run_cli("generate", question, "--model", smollm2_dir, "--method", "ar", "--max-new-tokens", "12", "--json")
    assert ar.returncode == 0, ar.stderr
    got = json.loads(ar.stdout)
    assert got["text"] + "\n" == sps.stdout  # greedy SpS equals greedy AR
    assert got["counters"]["tokens_per_target_forward"] == 1.0


@pytest.mark.smollm2
def test_smollm2_chat_command_answers_twice(smollm2_dir: Path, smollm2_draft_dir: Path) -> None:
    proc = run_cli(
        "chat", "--model", smollm2_dir, "--draft", smollm2_draft_dir, "--max-new-tokens", "10",
        input="What is the capital of France?\nAnd of Italy?\n",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    summaries = [line for line in proc.stderr.splitlines() if SUMMARY.match(line)]
    assert len(summaries) == 2, proc.stderr
    assert all("method sps" in s for s in summaries)
    assert "Paris" in proc.stdout and "Rome" in proc.stdout
