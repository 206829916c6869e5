"""ADED's tri-gram table (algorithms.md 4): building, pruning, adaptation, the file format
and its errors, and the `mtad build-trigram` command with its corpus recipes."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
import torch
from reference.aded import reference_rows

import mtad_ext
from mtad_ext import FormatError, InputError, TrigramTable

HEADER = struct.Struct("<8sIIQQQQQQ")  # magic, version, header bytes, vocab, C, E, payload, checksum, reserved


def random_sequences(seed: int, n: int, length: int, vocab: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    # A skewed unigram distribution so that contexts repeat and rows have many successors.
    probs = torch.arange(1, vocab + 1, dtype=torch.float64).pow(-1.1)
    return [torch.multinomial(probs, length, replacement=True, generator=g).tolist() for _ in range(n)]


def assert_rows_close(table: TrigramTable, rows: dict[tuple[int, int], list[tuple[int, float]]]) -> None:
    assert table.num_contexts == len(rows)
    for (a, b), want in rows.items():
        got = table.lookup(a, b)
        assert [t for t, _ in got] == [t for t, _ in want], (a, b)
        for (_, gv), (_, wv) in zip(got, want, strict=True):
            assert gv == pytest.approx(wv, rel=1e-6)


@pytest.mark.parametrize("k", [12, 3, 0])
def test_build_normalises_counts_per_context_and_prunes(k: int) -> None:
    seqs = random_sequences(1, 6, 400, 25)
    table = TrigramTable.build(seqs, vocab_size=25, max_successors=k)
    want = reference_rows(seqs, k)
    assert_rows_close(table, want)
    assert table.num_entries == sum(len(r) for r in want.values())
    if k == 3:
        # Pruning does not renormalise: a pruned row sums to less than 1.
        assert any(sum(v for _, v in table.lookup(*ctx)) < 0.99 for ctx in want)


def test_trigrams_do_not_span_sequences() -> None:
    table = TrigramTable(10)
    table.add_sequence([1, 2])
    table.add_sequence([3, 4, 5])
    assert table.pending_trigrams == 1
    table.finalize()
    assert table.lookup(1, 2) == [] and table.lookup(2, 3) == []
    assert table.lookup(3, 4) == [(5, 1.0)]


def test_add_sequence_accepts_tensors_and_checks_ids() -> None:
    table = TrigramTable(10)
    table.add_sequence(torch.tensor([1, 2, 3, 1, 2, 4]))
    table.finalize()
    assert table.lookup(1, 2) == [(3, 0.5), (4, 0.5)]
    with pytest.raises(InputError, match=r"ids\[2\] = 10 is outside the vocabulary"):
        table.add_sequence([1, 2, 10])
    with pytest.raises(InputError, match="vocab_size"):
        TrigramTable(0)
    with pytest.raises(InputError, match="outside the vocabulary"):
        table.lookup(10, 1)


def test_finalize_again_adds_values_to_existing_rows() -> None:
    table = TrigramTable.build([[1, 2, 3]], vocab_size=10)
    table.add_sequence([1, 2, 4, 1, 2, 4])
    table.finalize(max_successors=1)
    # (1, 2): 3 had 1.0; the new counts give 4 -> 1.0, summed: tie, the lower id first.
    assert table.lookup(1, 2) == [(3, 1.0)]


def test_adaptation_adds_increment_over_the_window_with_cap() -> None:
    table = TrigramTable.build([[1, 2, 3]], vocab_size=50)
    # 20 tokens: only the last 16 count; (7, 8, 9) occurs three times there, (1, 2, 3) once.
    seq = [40, 41, 42, 43] + [1, 2, 3] + [7, 8, 9] * 3 + [20, 21, 22, 23]
    table.adapt(seq, window=16)
    assert table.lookup(40, 41) == []  # outside the window
    assert table.lookup(1, 2) == [(3, pytest.approx(1.04))]
    assert table.lookup(7, 8) == [(9, pytest.approx(0.12))]  # three occurrences
    # A new successor is created and the row stays sorted best first.
    table.adapt([1, 2, 5] * 1, window=16)
    assert table.lookup(1, 2) == [(3, pytest.approx(1.04)), (5, pytest.approx(0.04))]
    for _ in range(200):
        table.adapt([1, 2, 5], window=16)
    assert table.lookup(1, 2)[0] == (5, pytest.approx(3.0))  # capped
    table.adapt([1, 2, 5], window=16, cap=2.0)  # a lower cap never lowers a value
    assert table.lookup(1, 2)[0][1] == pytest.approx(3.0)


def test_adaptation_window_counts_each_occurrence() -> None:
    table = TrigramTable(20)
    seq = [1, 2, 3, 1, 2, 3, 1, 2, 3]  # (1, 2, 3) three times, (2, 3, 1) and (3, 1, 2) twice
    table.adapt(seq, window=16, increment=0.5)
    assert table.lookup(1, 2) == [(3, pytest.approx(1.5))]
    assert table.lookup(2, 3) == [(1, pytest.approx(1.0))]
    table2 = TrigramTable(20)
    table2.adapt(seq, window=4, increment=0.5)  # the last 4 tokens: 3, 1, 2, 3
    assert table2.lookup(3, 1) == [(2, pytest.approx(0.5))]
    assert table2.lookup(1, 2) == [(3, pytest.approx(0.5))]
    assert table2.lookup(2, 3) == []


def test_save_load_round_trip_and_prune_at_load(tmp_path: Path) -> None:
    seqs = random_sequences(2, 4, 500, 30)
    table = TrigramTable.build(seqs, vocab_size=30, max_successors=0)
    table.adapt(seqs[0][:40])
    path = tmp_path / "t.tri"
    table.save(str(path))
    full = TrigramTable.load(str(path), vocab_size=30, max_successors=0)
    assert full.num_contexts == table.num_contexts and full.num_entries == table.num_entries
    for s in seqs:
        for a, b in zip(s, s[1:], strict=False):
            assert full.lookup(a, b) == table.lookup(a, b)
    pruned = TrigramTable.load(str(path), vocab_size=30)  # the default keeps 12
    for a, b in zip(seqs[0], seqs[0][1:], strict=False):
        assert pruned.lookup(a, b) == table.lookup(a, b)[:12]
    assert max(len(pruned.lookup(a, b)) for a, b in zip(seqs[1], seqs[1][1:], strict=False)) == 12
    # The vocabulary check is optional.
    assert TrigramTable.load(str(path)).vocab_size == 30


def test_empty_table_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "empty.tri"
    TrigramTable(7).save(str(path))
    t = TrigramTable.load(str(path), vocab_size=7)
    assert t.num_contexts == 0 and t.lookup(1, 2) == []


@pytest.fixture()
def table_file(tmp_path: Path) -> Path:
    path = tmp_path / "t.tri"
    TrigramTable.build(random_sequences(3, 3, 300, 40), vocab_size=40).save(str(path))
    return path


def test_other_vocabulary_raises(table_file: Path) -> None:
    with pytest.raises(InputError, match="built for a vocabulary of 40 tokens, but the model has 41"):
        TrigramTable.load(str(table_file), vocab_size=41)


def test_truncated_files_raise(table_file: Path, tmp_path: Path) -> None:
    data = table_file.read_bytes()
    for cut in (len(data) - 1, len(data) // 2, HEADER.size, 40, 9):
        bad = tmp_path / f"cut{cut}.tri"
        bad.write_bytes(data[:cut])
        with pytest.raises(FormatError, match="truncated") as e:
            TrigramTable.load(str(bad), vocab_size=40)
        assert str(bad) in str(e.value)
    empty = tmp_path / "empty.tri"
    empty.write_bytes(b"")
    with pytest.raises(FormatError, match="truncated"):
        TrigramTable.load(str(empty))


def test_bad_checksum_raises(table_file: Path, tmp_path: Path) -> None:
    data = bytearray(table_file.read_bytes())
    data[HEADER.size + 100] ^= 0x40  # one bit of the payload
    bad = tmp_path / "flip.tri"
    bad.write_bytes(bytes(data))
    with pytest.raises(FormatError, match="checksum mismatch"):
        TrigramTable.load(str(bad), vocab_size=40)


def test_wrong_version_and_magic_raise(table_file: Path, tmp_path: Path) -> None:
    data = table_file.read_bytes()
    fields = list(HEADER.unpack_from(data))
    assert fields[0] == b"MTADTRI\0" and fields[1] == 1 and fields[3] == 40
    fields[1] = 2
    newer = tmp_path / "v2.tri"
    newer.write_bytes(HEADER.pack(*fields) + data[HEADER.size:])
    with pytest.raises(FormatError, match="version 2, this build reads version 1"):
        TrigramTable.load(str(newer), vocab_size=40)
    other = tmp_path / "other.tri"
    other.write_bytes(b"PK\x03\x04" + data[4:])
    with pytest.raises(FormatError, match="not a tri-gram table file"):
        TrigramTable.load(str(other))
    trailing = tmp_path / "trailing.tri"
    trailing.write_bytes(data + b"\0")
    with pytest.raises(FormatError, match="unexpected bytes"):
        TrigramTable.load(str(trailing))
    fields = list(HEADER.unpack_from(data))
    fields[5] += 1  # entries no longer match the payload size
    inconsistent = tmp_path / "inconsistent.tri"
    inconsistent.write_bytes(HEADER.pack(*fields) + data[HEADER.size:])
    with pytest.raises(FormatError, match="inconsistent header"):
        TrigramTable.load(str(inconsistent))


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such tri-gram table file"):
        TrigramTable.load(str(tmp_path / "absent.tri"))
    assert issubclass(FormatError, mtad_ext.MtadError)


def test_large_table_round_trips(tmp_path: Path) -> None:
    """A table of the size tens of MB of text make (~10M tokens, a code corpus of 31 MB gives
    0.6M contexts): synthetic Markov text with 3M tokens over a 49152-token vocabulary
    gives more distinct contexts than that, the worst case for loading."""
    g = torch.Generator().manual_seed(0)
    V, n = 49152, 3_000_000
    # Each token is one of 8 successors of the previous one (a sparse Markov chain), so
    # contexts repeat as in text, plus a dash of uniform noise.
    succ = torch.randint(0, V, (V, 8), generator=g).tolist()
    choice = torch.randint(0, 8, (n,), generator=g).tolist()
    noise = (torch.rand(n, generator=g) < 0.1).tolist()
    rand = torch.randint(0, V, (n,), generator=g).tolist()
    prev = 0
    ids_list = []
    for i in range(n):
        prev = rand[i] if noise[i] else succ[prev][choice[i]]
        ids_list.append(prev)
    ids = torch.tensor(ids_list)
    table = TrigramTable(V)
    table.add_sequence(ids)
    table.finalize()
    path = tmp_path / "big.tri"
    table.save(str(path))
    assert table.num_contexts > 600_000
    loaded = TrigramTable.load(str(path), vocab_size=V)
    # How fast it loads is for a benchmark to print, not for a test to time.
    assert (loaded.num_contexts, loaded.num_entries) == (table.num_contexts, table.num_entries)
    for a in ids_list[:2000:97]:
        for b in (succ[a][0], succ[a][3]):
            assert loaded.lookup(a, b) == table.lookup(a, b)


# ---- the build command and its corpus recipes (SmolLM2's tokenizer) --------------------


def test_cli_builds_a_table_from_text_files(smollm2_dir: Path, tmp_path: Path) -> None:
    from mtad.cli import main
    from mtad.tokenizer import Tokenizer

    text = tmp_path / "a.txt"
    text.write_text("The quick brown fox jumps over the lazy dog.\n" * 5 + "The quick brown cat sleeps.\n")
    out = tmp_path / "a.tri"
    assert main(["build-trigram", "--model", str(smollm2_dir), "--out", str(out), str(text)]) == 0
    table = TrigramTable.load(str(out), vocab_size=49152)
    tok = Tokenizer(smollm2_dir)
    ids = tok.encode("The quick brown", add_special_tokens=False)
    fox, cat = (tok.encode(w, add_special_tokens=False)[0] for w in (" fox", " cat"))
    row = dict(table.lookup(ids[-2], ids[-1]))
    assert row[fox] == pytest.approx(5 / 6) and row[cat] == pytest.approx(1 / 6)


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from mtad.cli import main

    assert main(["build-trigram", "--model", str(tmp_path), "--out", str(tmp_path / "x.tri")]) == 2
    assert "no text" in capsys.readouterr().err
    assert main(["build-trigram", "--out", str(tmp_path / "x.tri"), str(tmp_path / "absent.txt")]) == 2
    assert "text file not found" in capsys.readouterr().err


def test_recipe_stdlib_corpus_for_code(smollm2_dir: Path) -> None:
    from mtad.aded_build import build_table, stdlib_files
    from mtad.tokenizer import Tokenizer

    files = stdlib_files()
    assert len(files) > 300 and not any("test" in f.parts for f in files)
    picked = [f for f in files if f.name in {"dataclasses.py", "functools.py", "textwrap.py", "argparse.py"}]
    table = build_table(smollm2_dir, picked, progress=False)
    tok = Tokenizer(smollm2_dir)
    ids = tok.encode("        self.", add_special_tokens=False)
    # Code idioms come out: after "def __init__(self" the next token is "," or "):".
    init = tok.encode("    def __init__(self", add_special_tokens=False)
    best = [tok.decode([t]) for t, _ in table.lookup(init[-2], init[-1])[:3]]
    assert "," in best and "):" in best, best
    assert table.num_contexts > 5000 and len(ids) >= 2


def test_recipe_self_generated_corpus(smollm2_dir: Path, tmp_path: Path) -> None:
    from mtad.aded_build import build_table, read_prompts, self_generated_corpus
    from mtad.tokenizer import Tokenizer

    prompts_file = tmp_path / "prompts.jsonl"
    prompts_file.write_text('{"prompt": "What is the capital of France?"}\n{"turns": ["Name a colour."]}\n')
    prompts = read_prompts(prompts_file)
    assert prompts == ["What is the capital of France?", "Name a colour."]
    corpus = self_generated_corpus(smollm2_dir, prompts, max_new_tokens=24, progress=False)
    assert "Paris" in corpus
    table = build_table(smollm2_dir, [("self", corpus)], progress=False)
    tok = Tokenizer(smollm2_dir)
    ids = tok.encode(corpus.split("\n\n")[0], add_special_tokens=False)
    # Every tri-gram of the target's own text is in the table.
    for a, b, c in zip(ids, ids[1:], ids[2:], strict=False):
        assert c in dict(table.lookup(a, b))
