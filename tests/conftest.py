"""Shared fixtures: paths of the vectors copied into tests/vectors (see its README), and
the PostgreSQL server of the session (a fixture defined here is set up once for the
session; a session fixture imported into several modules is set up once per module)."""

from __future__ import annotations

import compileall
from collections.abc import Iterator
from pathlib import Path

import pytest

import blindmatch
from service_support import PostgresServer, postgres_server

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


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session (each test takes a database of its own);
    modules use it through ``service_support.postgres``."""
    with postgres_server() as server:
        yield server
