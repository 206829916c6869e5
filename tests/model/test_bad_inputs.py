"""Every kind of bad input raises its documented exception, naming what is wrong,
and never takes the process down."""

from __future__ import annotations

import json
import shutil
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from tiny_models import save_tiny

import mtad_ext
from mtad_ext import ConfigError, FormatError, InputError, WeightError


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return save_tiny("llama_gqa_tied", "float32", tmp_path_factory.mktemp("good"))


def copy_model(good: Path, dst: Path) -> Path:
    shutil.copytree(good, dst)
    return dst


def raw_file(path: Path, header: bytes | dict, data: bytes = b"", length: int | None = None) -> None:
    hb = header if isinstance(header, bytes) else json.dumps(header).encode()
    n = len(hb) if length is None else length
    path.write_bytes(struct.pack("<Q", n) + hb + data)


F32_2x2 = {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}

# name -> (header, data, header-length override, expected message fragment)
RAW_CASES: dict[str, tuple] = {
    "shorter_than_length_field": (None, b"", None, "truncated"),
    "header_length_past_end": ({"w": F32_2x2}, bytes(16), 10_000, "past the end"),
    "malformed_json": (b'{"w": {"dtype": "F32", ', b"", None, "malformed header JSON"),
    "header_not_object": (b"[1, 2, 3]", b"", None, "not a JSON object"),
    "unknown_dtype": ({"w": {"dtype": "F33", "shape": [2], "data_offsets": [0, 8]}}, bytes(8), None,
                      "unknown dtype 'F33'"),
    "offsets_past_data": ({"w": F32_2x2}, bytes(8), None, "run past the end of the data"),
    "offsets_reversed": ({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}}, bytes(8), None,
                         "begin after they end"),
    "span_not_shape": ({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}, bytes(16), None,
                       "need 12"),
    "negative_dim": ({"w": {"dtype": "F32", "shape": [-2, 2], "data_offsets": [0, 16]}}, bytes(16), None,
                     "negative"),
    "overlap": ({"a": F32_2x2, "b": {"dtype": "F32", "shape": [2, 2], "data_offsets": [8, 24]}}, bytes(24),
                None, "overlap"),
    "missing_offsets": ({"w": {"dtype": "F32", "shape": [2]}}, bytes(8), None, "data_offsets"),
}


@pytest.mark.parametrize("case", list(RAW_CASES))
def test_malformed_safetensors(case, good, tmp_path):
    header, data, length, fragment = RAW_CASES[case]
    folder = copy_model(good, tmp_path / "m")
    path = folder / "model.safetensors"
    if header is None:
        path.write_bytes(b"\x01\x02\x03")
    else:
        raw_file(path, header, data, length)
    with pytest.raises(FormatError) as err:
        mtad_ext.load_model(str(folder))
    assert fragment in str(err.value)
    assert "model.safetensors" in str(err.value)


def test_truncated_real_file(good, tmp_path):
    folder = copy_model(good, tmp_path / "m")
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(FormatError, match="truncated file"):
        mtad_ext.load_model(str(folder))


def edit_weights(fn: Callable[[dict[str, torch.Tensor]], None]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        path = folder / "model.safetensors"
        tensors = load_file(path)
        fn(tensors)
        save_file(tensors, path)

    return apply


def edit_config(fn: Callable[[dict], None]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        cfg = json.loads((folder / "config.json").read_text())
        fn(cfg)
        (folder / "config.json").write_text(json.dumps(cfg))

    return apply


L0 = "model.layers.0."
# name -> (edit, exception, fragment the message must contain)
FOLDER_CASES: dict[str, tuple] = {
    "missing_tensor": (edit_weights(lambda t: t.pop(L0 + "mlp.up_proj.weight")), WeightError,
                       "missing tensor 'model.layers.0.mlp.up_proj.weight'"),
    "unexpected_tensor": (edit_weights(lambda t: t.update(extra=torch.zeros(3))), WeightError, "'extra'"),
    "shape_mismatch": (edit_weights(lambda t: t.update({L0 + "self_attn.q_proj.weight": torch.zeros(64, 63)})),
                       WeightError, "self_attn.q_proj.weight' has shape [64, 63]"),
    "dtype_mismatch": (edit_weights(lambda t: t.update({"model.norm.weight": torch.zeros(64, dtype=torch.int64)})),
                       WeightError, "'model.norm.weight' has dtype I64"),
    "unsupported_arch": (edit_config(lambda c: c.update(model_type="gpt2")), ConfigError, "'model_type'"),
    "unsupported_rope": (edit_config(lambda c: c.update(rope_parameters={"rope_type": "yarn", "factor": 2.0})),
                         ConfigError, "rope_type 'yarn'"),
    "unsupported_act": (edit_config(lambda c: c.update(hidden_act="gelu")), ConfigError, "'hidden_act'"),
    "missing_key": (edit_config(lambda c: c.pop("vocab_size")), ConfigError, "'vocab_size' is required"),
    "bad_value": (edit_config(lambda c: c.update(num_hidden_layers=-1)), ConfigError, "'num_hidden_layers'"),
    "kv_heads_not_divisor": (edit_config(lambda c: c.update(num_key_value_heads=3)), ConfigError,
                             "'num_key_value_heads'"),
    "quantized": (edit_config(lambda c: c.update(quantization_config={"quant_method": "gptq"})), ConfigError,
                  "'quantization_config'"),
    "config_not_json": (lambda f: (f / "config.json").write_text("{nope"), ConfigError, "malformed JSON"),
    "vocab_disagrees": (edit_config(lambda c: c.update(vocab_size=300)), WeightError, "embed_tokens.weight"),
}


@pytest.mark.parametrize("case", list(FOLDER_CASES))
def test_broken_folder(case, good, tmp_path):
    edit, exc, fragment = FOLDER_CASES[case]
    folder = copy_model(good, tmp_path / "m")
    edit(folder)
    with pytest.raises(exc) as err:
        mtad_ext.load_model(str(folder))
    assert fragment in str(err.value)
    assert isinstance(err.value, mtad_ext.MtadError) and isinstance(err.value, ValueError)


def test_missing_files(good, tmp_path):
    with pytest.raises(FileNotFoundError, match="no such model folder"):
        mtad_ext.load_model(str(tmp_path / "absent"))
    folder = copy_model(good, tmp_path / "m")
    (folder / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="neither model.safetensors"):
        mtad_ext.load_model(str(folder))
    (folder / "config.json").unlink()
    with pytest.raises(FileNotFoundError, match="config.json"):
        mtad_ext.load_model(str(folder))


def test_sharded_index_errors(good, tmp_path):
    folder = copy_model(good, tmp_path / "m")
    shard = folder / "model.safetensors"
    shard.rename(folder / "part-1.safetensors")
    names = list(load_file(folder / "part-1.safetensors"))
    index = {"weight_map": {n: "part-1.safetensors" for n in names}}
    index["weight_map"]["model.ghost.weight"] = "part-1.safetensors"
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(WeightError, match="'model.ghost.weight'"):
        mtad_ext.load_model(str(folder))
    index["weight_map"] = {n: "part-2.safetensors" for n in names}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(FileNotFoundError, match="part-2.safetensors"):
        mtad_ext.load_model(str(folder))


@pytest.fixture(scope="module")
def model(good):
    return mtad_ext.load_model(str(good))


# name -> (call on (model, cache), fragment)
CALL_CASES: dict[str, tuple] = {
    "token_too_large": (lambda m, c: m.forward(c, torch.tensor([1, 211])), "token id 211"),
    "token_negative": (lambda m, c: m.forward(c, torch.tensor([-1])), "token id -1"),
    "tokens_not_int64": (lambda m, c: m.forward(c, torch.tensor([1.0])), "int64"),
    "tokens_empty": (lambda m, c: m.forward(c, torch.tensor([], dtype=torch.long)), "empty"),
    "cache_overflow": (lambda m, c: m.forward(c, torch.zeros(9, dtype=torch.long)), "exceed the cache capacity 8"),
    "mask_shape": (lambda m, c: m.forward(c, torch.tensor([1, 2]), tree_mask=torch.ones(2, 3, dtype=torch.bool)),
                   "tree_mask"),
    "mask_no_self": (lambda m, c: m.forward(c, torch.tensor([1, 2]), tree_mask=torch.zeros(2, 2, dtype=torch.bool)),
                     "diagonal"),
    "positions_length": (lambda m, c: m.forward(c, torch.tensor([1, 2]), positions=torch.tensor([0])),
                         "positions"),
    "positions_negative": (lambda m, c: m.forward(c, torch.tensor([1]), positions=torch.tensor([-3])),
                           "non-negative"),
    "logit_rows_range": (lambda m, c: m.forward(c, torch.tensor([1, 2]), logit_rows=torch.tensor([2])),
                         "logit_rows"),
    "truncate_beyond": (lambda m, c: c.truncate(5), "outside [0, 0]"),
    "capacity_zero": (lambda m, c: m.new_cache(0), "capacity must be positive"),
}


@pytest.mark.parametrize("case", list(CALL_CASES))
def test_bad_call(case, model):
    call, fragment = CALL_CASES[case]
    cache = model.new_cache(8)
    with pytest.raises(InputError) as err:
        call(model, cache)
    assert fragment in str(err.value)
    assert cache.length == 0, "a rejected call must leave the cache as it was"


def test_foreign_cache_rejected(model, tmp_path):
    other = mtad_ext.load_model(str(save_tiny("llama_mha_untied", "float32", tmp_path)))
    with pytest.raises(InputError, match="not made by this model"):
        model.forward(other.new_cache(8), torch.tensor([1]))


def test_opt_positions_beyond_table(tmp_path):
    opt = mtad_ext.load_model(str(save_tiny("opt_pre_ln", "float32", tmp_path)))
    with pytest.raises(InputError, match="learned positions"):
        opt.forward(opt.new_cache(8), torch.tensor([1]), positions=torch.tensor([128]))
