"""The cost file of gamma / max_nodes "auto" (python/mtad/cost_cache.py): a later process
on the same machine gets the measured table instead of measuring it again, and decodes as
the first one did; changed weights, a stale or damaged file, or MTAD_COST_CACHE=off mean
measuring again."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import mtad
import pytest
from mtad import cost_cache

import mtad_ext

REQUEST = {"max_new_tokens": 12, "method": "sps", "gamma": "auto", "temperature": 1.0, "seed": 3}


@pytest.fixture
def cost_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "costs.json"
    monkeypatch.setenv("MTAD_COST_CACHE", str(path))
    return path


def test_a_later_load_reuses_the_table_and_decodes_the_same(tiny_dirs: dict, cost_file: Path) -> None:
    first = mtad.load(tiny_dirs["target"], draft_dir=tiny_dirs["draft"])
    a = first.generate("the world", **REQUEST)
    measured = first.model.forward_seconds_table()
    assert measured and first.draft.forward_seconds_table()
    saved = json.loads(cost_file.read_text())["entries"]
    assert len(saved) == 2  # target and draft

    second = mtad.load(tiny_dirs["target"], draft_dir=tiny_dirs["draft"])
    b = second.generate("the world", **REQUEST)
    # Not re-measured: timings of new runs would not repeat to the last bit.
    assert second.model.forward_seconds_table() == measured
    assert second.draft.forward_seconds_table() == first.draft.forward_seconds_table()
    # The automatic draft lengths follow the same costs: a sampled output repeats.
    assert b.token_ids == a.token_ids


def test_changed_weights_are_measured_again(tiny_dirs: dict, cost_file: Path, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    shutil.copytree(tiny_dirs["target"], folder)
    gen = mtad.load(folder)
    gen.model.forward_seconds(1)
    gen.model.forward_seconds(5)
    assert cost_cache.CostCache(gen.model, folder).save()

    again = mtad.load(folder)
    assert cost_cache.CostCache(again.model, folder).restore() == 2
    weights = next(folder.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes())  # same bytes, a new file: the key changes
    changed = mtad.load(folder)
    assert cost_cache.CostCache(changed.model, folder).restore() == 0
    assert changed.model.forward_seconds_table() == {}


def test_stale_or_damaged_entries_are_not_used(tiny_dirs: dict, cost_file: Path) -> None:
    gen = mtad.load(tiny_dirs["target"])
    gen.model.forward_seconds(2)
    entry = cost_cache.CostCache(gen.model, tiny_dirs["target"])
    assert entry.save()
    data = json.loads(cost_file.read_text())
    seconds = data["entries"][entry.key()]["seconds"]
    seconds["2"][1] = time.time() - cost_cache.MAX_AGE_S - 60  # measured more than a week ago
    seconds["3"] = ["not a number", time.time()]
    cost_file.write_text(json.dumps(data))
    fresh = mtad.load(tiny_dirs["target"])
    assert cost_cache.CostCache(fresh.model, tiny_dirs["target"]).restore() == 0

    data["entries"][entry.key()]["seconds"] = ["not", "a", "table"]
    cost_file.write_text(json.dumps(data))
    fresh.model.forward_seconds(7)
    assert cost_cache.CostCache(fresh.model, tiny_dirs["target"]).save()  # the damaged entry replaced

    cost_file.write_text('{"version": 1, "entries": ')  # cut short
    assert cost_cache.CostCache(fresh.model, tiny_dirs["target"]).restore() == 0
    fresh.model.forward_seconds(1)
    assert cost_cache.CostCache(fresh.model, tiny_dirs["target"]).save()  # rewritten whole
    assert len(json.loads(cost_file.read_text())["entries"]) == 1


def test_entries_of_removed_folders_are_dropped(tiny_dirs: dict, cost_file: Path, tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    shutil.copytree(tiny_dirs["target"], gone)
    m = mtad.load(gone).model
    m.forward_seconds(1)
    assert cost_cache.CostCache(m, gone).save()
    shutil.rmtree(gone)
    kept = mtad.load(tiny_dirs["target"]).model
    kept.forward_seconds(1)
    assert cost_cache.CostCache(kept, tiny_dirs["target"]).save()
    folders = [e["folder"] for e in json.loads(cost_file.read_text())["entries"].values()]
    assert folders == [str(Path(tiny_dirs["target"]).resolve())]


def test_off_writes_nothing(tiny_dirs: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTAD_COST_CACHE", "off")
    monkeypatch.setenv("MTAD_CACHE", str(tmp_path))
    assert cost_cache.cache_file() is None
    gen = mtad.load(tiny_dirs["target"], draft_dir=tiny_dirs["draft"])
    gen.generate("the world", **REQUEST)
    assert list(tmp_path.iterdir()) == []


def test_set_forward_seconds_checks_its_input(tiny_dirs: dict) -> None:
    m = mtad.load(tiny_dirs["target"]).model
    for T, s in ((0, 0.01), (2, 0.0), (2, -1.0), (2, float("nan")), (2, float("inf"))):
        with pytest.raises(mtad_ext.InputError):
            m.set_forward_seconds(T, s)
    m.set_forward_seconds(4, 0.25)
    assert m.forward_seconds(4) == 0.25  # given, not measured
