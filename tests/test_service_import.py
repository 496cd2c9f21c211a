"""Bulk import: CSV, JSON Lines and python-threatexchange's file lines, on both databases."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from blindmatch.service import audit, bulk
from blindmatch.service.bootstrap import bootstrap
from blindmatch.service.epochs import KeyStore
from blindmatch.service.errors import Unprocessable
from blindmatch.service.publication import publish
from blindmatch.service.schema import fingerprints, publication_files, reports
from blindmatch.service.settings import Settings
from blindmatch.service.storage import Database
from service_support import BLINDMATCH, database_url, postgres  # noqa: F401 - fixtures

PDQ = "f" * 63 + "0"
MD5 = hashlib.md5(b"listed", usedforsecurity=False).hexdigest()
SHA = hashlib.sha256(b"listed").hexdigest()


@pytest.fixture
def deployment(tmp_path: Path, database_url: str) -> Iterator[tuple[Settings, Database, KeyStore]]:  # noqa: F811
    settings = Settings(tmp_path / "data", database_url)
    database, keys = bootstrap(settings)
    yield settings, database, keys
    database.dispose()


def _count(database: Database, table: sa.Table) -> int:
    with database.begin() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_three_formats_import_group_and_publish(
    tmp_path: Path, deployment: tuple[Settings, Database, KeyStore]
) -> None:
    settings, database, keys = deployment
    (tmp_path / "list.csv").write_text(
        "signal,hash,quality,report\n"
        f"pdq,{PDQ},90,case-1\n"
        f"md5,{MD5},,case-1\n"
        f"pdq,{'0' * 63 + '1'},20,case-2\n"
        f"sha256,{SHA},,\n"
    )
    (tmp_path / "list.jsonl").write_text(
        json.dumps({"signal": "sha256", "hash": SHA})
        + "\n\n"
        + json.dumps({"signal": "md5", "hash": "ab" * 16, "report": "x"})
        + "\n"
    )
    (tmp_path / "te.txt").write_text(f"pdq {'1' * 64}\nvideo_md5 {'cd' * 16}\n\n")
    with database.begin() as connection:
        first = bulk.import_file(connection, tmp_path / "list.csv")
        second = bulk.import_file(connection, tmp_path / "list.jsonl")
        third = bulk.import_file(connection, tmp_path / "te.txt")
    assert first.to_json() == {
        "reports": 2,
        "fingerprints": 3,
        "duplicates": 0,
        "refused_low_quality": 1,
    }
    assert second.to_json() == {
        "reports": 1,
        "fingerprints": 1,
        "duplicates": 1,
        "refused_low_quality": 0,
    }
    assert third.reports == 2
    assert _count(database, reports) == 5
    assert _count(database, fingerprints) == 6
    publish(settings, database, keys, processes=1)
    with database.begin() as connection:
        counts = dict(
            connection.execute(
                sa.select(publication_files.c.signal, publication_files.c.references)
            ).all()
        )
        assert audit.verify(connection).ok
    assert counts == {"md5": 3, "pdq": 2, "sha256": 1, "vpdq": 0}


@pytest.mark.parametrize(
    ("content", "name", "line"),
    [
        (f"signal,hash\npdq,{PDQ}\nmd5,zz\n", "bad.csv", 3),
        ("hash\nab\n", "bad.csv", 1),
        (json.dumps({"signal": "pdq", "hash": PDQ}) + "\n[1]\n", "bad.jsonl", 2),
        (f"pdq {PDQ}\nwhatever\n", "bad.txt", 2),
        (f"pdq {PDQ}\nmd5 {'ab' * 8}\n", "bad.txt", 2),
    ],
)
def test_a_malformed_row_imports_nothing(
    tmp_path: Path,
    deployment: tuple[Settings, Database, KeyStore],
    content: str,
    name: str,
    line: int,
) -> None:
    _, database, _ = deployment
    (tmp_path / name).write_text(content)
    with pytest.raises(Unprocessable, match=f"line {line}:"), database.begin() as connection:
        bulk.import_file(connection, tmp_path / name)
    assert _count(database, reports) == 0


def test_admin_import_cli(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (tmp_path / "te.txt").write_text(f"pdq {PDQ}\n")
    done = subprocess.run(
        [
            *BLINDMATCH,
            "admin",
            "--data-dir",
            str(data),
            "--json",
            "import",
            str(tmp_path / "te.txt"),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(done.stdout)["reports"] == 1
    (tmp_path / "bad.txt").write_text(f"pdq {PDQ[:-2]}\n")
    failed = subprocess.run(
        [*BLINDMATCH, "admin", "--data-dir", str(data), "import", str(tmp_path / "bad.txt")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert failed.returncode == 2
    assert failed.stderr.strip() == "blindmatch: error: line 1: wrong hash length for pdq"
    assert PDQ[:10] not in failed.stderr
