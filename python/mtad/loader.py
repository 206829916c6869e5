"""mtad.load: model folders (and a draft folder) to a Generator, checking what can be
checked before hundreds of megabytes of weights are read."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .compat import check_draft_compatible
from .cost_cache import CostCache
from .generate import Generator
from .params import DTYPES
from .tokenizer import Tokenizer

if TYPE_CHECKING:
    from .options import TableArg


def _folder(path: str | Path, what: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {p}")
    return p


def load(
    model_dir: str | Path,
    draft_dir: str | Path | None = None,
    device: str = "cpu",
    dtype: str = "auto",
    draft_dtype: str | None = None,
    mmap: bool = False,
    table: TableArg | None = None,
    **kwargs: Any,
) -> Generator:
    """Load a model folder (config.json, safetensors, tokenizer) and optionally a draft
    folder into a Generator.

    dtype: on the CPU the storage of the weight matrices (auto = float32, float16,
    bfloat16; compute is float32), on a GPU the run dtype. draft_dtype: the draft's
    (None: the same as dtype). The draft's tokenizer, when its folder has one, must match
    the target's (IncompatibleDraftError otherwise). table: ADED's tri-gram table file
    (`mtad build-trigram`), loaded for the model's vocabulary (mtad_ext.InputError when it
    was built for another), or a mtad_ext.TrigramTable; None: an empty table that learns
    from the prompts. Extra keyword arguments go to Generator (e.g. cache_capacity).
    """
    path = _folder(model_dir, "model")
    dpath = _folder(draft_dir, "draft") if draft_dir is not None else None
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if draft_dtype is not None and draft_dtype not in DTYPES:
        raise ValueError(f"draft_dtype must be one of {', '.join(DTYPES)}, got {draft_dtype!r}")
    if isinstance(table, (str, os.PathLike)) and not Path(table).expanduser().is_file():
        # Before the weights are read; the engine reports a bad or mismatched file when loading it.
        raise FileNotFoundError(f"tri-gram table not found: {Path(table).expanduser()}")
    # Tokenizers first: they are cheap and their errors (no tokenizer, bad files) should
    # come before loading hundreds of megabytes of weights.
    tokenizer = Tokenizer(path)
    draft_tokenizer = None
    if dpath is not None and ((dpath / "tokenizer.json").is_file() or (dpath / "tokenizer.model").is_file()):
        draft_tokenizer = Tokenizer(dpath)
    checked = False
    if dpath is not None:
        # Check what the folders say before the weights are read.
        try:
            dcfg = json.loads((dpath / "config.json").read_text(encoding="utf-8"))
            tcfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass  # the loader reports missing or malformed config files itself
        else:
            if isinstance(dcfg, dict) and isinstance(tcfg, dict):
                check_draft_compatible(tcfg, tokenizer, dcfg, draft_tokenizer, str(path), str(dpath))
                checked = True
    import mtad_ext  # imported here so that tokenizers and checks work without torch

    model = mtad_ext.load_model(str(path), device=device, dtype=dtype, mmap=mmap)
    draft = None
    if dpath is not None:
        draft = mtad_ext.load_model(str(dpath), device=device, dtype=draft_dtype or dtype, mmap=mmap)
    # The cost tables gamma and max_nodes "auto" weigh drafts with, measured by an earlier
    # process on this machine (cost_cache.py).
    costs = [CostCache(model, path)] + ([CostCache(draft, dpath)] if draft is not None and dpath is not None else [])
    return Generator(
        model, tokenizer, draft=draft, draft_tokenizer=draft_tokenizer, check_draft=not checked, table=table,
        costs=costs, **kwargs,
    )  # fmt: skip

