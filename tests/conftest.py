"""Shared fixtures: paths of the vectors copied into tests/vectors (see its README)."""

from __future__ import annotations

import compileall
from pathlib import Path

import pytest

import blindmatch

VECTORS = Path(__file__).parent / "vectors"


def pytest_sessionstart(session: pytest.Session) -> None:
    """Byte-compile the package once before the tests. The suite runs it in hundreds of
    subprocesses (servers, their workers and publishers, the CLI); under
    ``PYTHONDONTWRITEBYTECODE=1`` an editable install has no ``__pycache__``, and each
    of them would compile every module anew."""
    compileall.compile_dir(Path(blindmatch.__file__).parent, quiet=1)


@pytest.fixture(scope="session")
def vectors_dir() -> Path:
    return VECTORS
