"""The method list has one source, the engine's table: what mtad_ext.METHODS names is what
the Decoder runs, what the driver lists and what the command line accepts."""

from __future__ import annotations

import subprocess
import sys

import pytest
from mtad.cli import _build_parser
from mtad.methods import DRAFT_METHODS, METHOD_CHOICES, METHODS
from tiny_models import save_tiny

import mtad_ext


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> mtad_ext.Model:
    return mtad_ext.load_model(str(save_tiny("llama_gqa_tied", "float32", tmp_path_factory.mktemp("table"))))


def test_every_listed_method_runs_under_its_name(model: mtad_ext.Model) -> None:
    assert set(mtad_ext.METHODS) >= {"ar", "sps", "mtad", "mtad-tree", "aded"}
    assert len(set(mtad_ext.METHODS)) == len(mtad_ext.METHODS)
    for name in mtad_ext.METHODS:
        dec = mtad_ext.Decoder(model, model, method=name, temperature=0.0, top_k=0, top_p=1.0, capacity=64)
        assert dec.method == name
        dec.start([5, 17, 42, 9])
        assert len(dec.step()) >= 1


def test_draft_methods_are_exactly_those_refused_without_a_draft(model: mtad_ext.Model) -> None:
    assert set(mtad_ext.DRAFT_METHODS) <= set(mtad_ext.METHODS)
    for name in mtad_ext.METHODS:
        if name in mtad_ext.DRAFT_METHODS:
            with pytest.raises(mtad_ext.InputError, match=f"method {name} needs a draft model"):
                mtad_ext.Decoder(model, method=name)
        else:
            assert mtad_ext.Decoder(model, method=name).draft_cache is None


def test_an_unlisted_name_is_refused_with_the_list(model: mtad_ext.Model) -> None:
    with pytest.raises(mtad_ext.InputError, match="not one of " + ", ".join(mtad_ext.METHODS) + "$"):
        mtad_ext.Decoder(model, method="beam")


def test_the_driver_and_the_command_line_read_the_table() -> None:
    assert tuple(METHODS) == mtad_ext.METHODS
    assert tuple(DRAFT_METHODS) == mtad_ext.DRAFT_METHODS
    assert tuple(METHOD_CHOICES) == ("auto", *mtad_ext.METHODS)
    parser = _build_parser()
    for name in METHOD_CHOICES:
        assert parser.parse_args(["generate", "hi", "--method", name]).method == name
    with pytest.raises(Exception, match="invalid choice: 'beam' \\(choose from 'auto', 'ar', "):
        parser.parse_args(["generate", "hi", "--method", "beam"])


def test_the_command_line_help_does_not_load_the_engine() -> None:
    code = "import sys\nfrom mtad.cli import _build_parser\n_build_parser()\nprint('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
