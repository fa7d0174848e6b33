"""Fixtures for evaluation tests: small hand-made datasets and a fake detector."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("REFEREE_SHARED", REPO / ".." / "shared")).resolve()
DATASETS = SHARED / "datasets"


def needs_shared(folder: str) -> pytest.MarkDecorator:
    """Mark a test that reads ../shared/datasets/<folder>; skipped with a reason when absent."""
    return pytest.mark.skipif(
        not (DATASETS / folder).exists(),
        reason=f"needs {DATASETS / folder} (set REFEREE_SHARED to the shared folder); not present here",
    )
