"""Shared fixtures: paths of the vectors copied into tests/vectors (see its README)."""

from __future__ import annotations

from pathlib import Path

import pytest

VECTORS = Path(__file__).parent / "vectors"


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    return VECTORS
