"""Shared pytest fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def smollm2_dir() -> Path:
    """The converted SmolLM2-135M-Instruct folder (fetched once; skip if unobtainable)."""
    from mtad.fetch import fetch_default

    try:
        return fetch_default(progress=False)
    except Exception as e:  # any failure means "not available here", never a test error
        pytest.skip(f"SmolLM2-135M-Instruct is not available: {e}")
