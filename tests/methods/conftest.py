"""Models the decoding-method tests share (loaded once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_models import save_tiny

import mtad_ext

ARCHS = ["llama_gqa_tied", "opt_pre_ln"]


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, mtad_ext.Model]:
    """Two tiny random models over one vocabulary: a Llama (GQA, tied) and an OPT."""
    root = tmp_path_factory.mktemp("tiny_methods")
    return {n: mtad_ext.load_model(str(save_tiny(n, "float32", root))) for n in ARCHS}


@pytest.fixture(scope="session")
def smol_target(smollm2_dir: Path) -> mtad_ext.Model:
    return mtad_ext.load_model(str(smollm2_dir))


@pytest.fixture(scope="session")
def smol(smol_target: mtad_ext.Model, smollm2_draft_dir: Path) -> tuple[mtad_ext.Model, mtad_ext.Model]:
    """SmolLM2 and its weak layer-dropped draft."""
    return smol_target, mtad_ext.load_model(str(smollm2_draft_dir))
