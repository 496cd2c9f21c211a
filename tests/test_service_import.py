"""Bulk import: CSV, JSON Lines, python-threatexchange's file lines and HMA's CSV, on both
databases; imported reports keep their reference and the operator finds them by it."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from blindmatch.service import audit, bulk, feedback
from blindmatch.service.bootstrap import bootstrap
from blindmatch.service.epochs import KeyStore
from blindmatch.service.errors import NotFound, Unprocessable
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


VECTORS = Path(__file__).parent / "vectors" / "import"


def test_hma_and_threatexchange_lines_keep_their_references(
    deployment: tuple[Settings, Database, KeyStore],
) -> None:
    _, database, _ = deployment
    with database.begin() as connection:
        hma_pdq = bulk.import_file(connection, VECTORS / "pdq.csv")
        hma_md5 = bulk.import_file(connection, VECTORS / "video_md5.csv")
        te = bulk.import_file(connection, VECTORS / "threatexchange-file.txt")
    assert (hma_pdq.reports, hma_pdq.fingerprints) == (3, 3)
    assert (hma_md5.reports, hma_md5.fingerprints) == (2, 2)
    # The file exchange's pdq and video_md5 lines repeat HMA rows: one report each already.
    assert (te.reports, te.duplicates) == (1, 2)
    with database.begin() as connection:
        [found] = feedback.find(connection, "2880742865368386")
        assert found.to_json() == {
            "report_id": found.report_id,
            "reference": "2880742865368386",
            "source": "import",
            "status": "active",
            "created_at": found.created_at,
            "fingerprints": {"pdq": 1},
            "disputes": 0,
            "actioned": 0,
        }
        [md5] = feedback.find(connection, "4162911387113748")
        assert md5.fingerprints == {"md5": 1}
        # Found by its report id too; the file exchange's lines carry no reference.
        assert feedback.find(connection, found.report_id) == [found]
        stored = connection.execute(sa.select(reports.c.reference).order_by(reports.c.id)).scalars()
        assert list(stored) == [
            "2880742865368386",
            "2888629371260007",
            "3085240538237227",
            "4162911387113748",
            "3085044528211555",
            None,
        ]
        with pytest.raises(NotFound):
            feedback.find(connection, "nothing-like-it")


def test_the_signal_type_of_lines_that_do_not_name_it(
    tmp_path: Path, deployment: tuple[Settings, Database, KeyStore]
) -> None:
    _, database, _ = deployment
    (tmp_path / "list.csv").write_text(f"{PDQ},77,2020-07-31T18:47:52+0000,\n")
    (tmp_path / "hashes.txt").write_text(f"{MD5}\n\n{'ab' * 16}\n")
    with (
        pytest.raises(Unprocessable, match="line 1: an HMA file needs the signal type"),
        database.begin() as connection,
    ):
        bulk.import_file(connection, tmp_path / "list.csv")
    with database.begin() as connection:
        assert bulk.import_file(connection, tmp_path / "list.csv", signal="pdq").reports == 1
        assert bulk.import_file(connection, tmp_path / "hashes.txt", signal="md5").reports == 2
        assert [r.fingerprints for r in feedback.find(connection, "77")] == [{"pdq": 1}]
    assert _count(database, reports) == 3


def test_admin_reports_show_finds_an_imported_report_by_reference(tmp_path: Path) -> None:
    data = tmp_path / "data"
    admin = [*BLINDMATCH, "admin", "--data-dir", str(data)]
    subprocess.run([*admin, "import", str(VECTORS / "video_md5.csv")], check=True)
    shown = subprocess.run(
        [*admin, "--json", "reports", "show", "3085044528211555"],
        capture_output=True,
        text=True,
        check=True,
    )
    [report] = json.loads(shown.stdout)
    assert report["reference"] == "3085044528211555"
    assert report["fingerprints"] == {"md5": 1}
    assert "d41d8cd98f00b204e9800998ecf8427e" not in shown.stdout  # never the hash
    text = subprocess.run(
        [*admin, "reports", "show", report["report_id"]], capture_output=True, text=True, check=True
    )
    assert text.stdout.startswith(f"{report['report_id']}  reference 3085044528211555  active")
    missing = subprocess.run(
        [*admin, "reports", "show", "nope"], capture_output=True, text=True, check=False
    )
    assert missing.returncode == 2
    assert missing.stderr.strip() == "blindmatch: error: no report has that id or reference"
