"""The service's storage layer in process, on SQLite and on a real PostgreSQL.

Migrations give exactly the schema's tables; SQLite runs in WAL with synchronous=FULL;
the audit chain detects edited, removed, reordered and truncated entries; quotas hold
under concurrent reservations; key files are owner-only and rotation keeps the old epoch
answering for the grace period.
"""

from __future__ import annotations

import json
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from blindmatch.service import audit, platforms, quotas
from blindmatch.service.bootstrap import bootstrap
from blindmatch.service.epochs import KeyStore
from blindmatch.service.errors import TooManyRequests
from blindmatch.service.schema import audit_log, metadata, quota_usage
from blindmatch.service.settings import Settings
from blindmatch.service.storage import Database, now
from service_support import database_url, postgres  # noqa: F401 - fixtures


@pytest.fixture
def deployment(tmp_path: Path, database_url: str) -> Iterator[tuple[Settings, Database, KeyStore]]:  # noqa: F811
    settings = Settings(tmp_path / "data", database_url)
    database, keys = bootstrap(settings)
    yield settings, database, keys
    database.dispose()


def test_migrations_create_exactly_the_schema(
    deployment: tuple[Settings, Database, KeyStore],
) -> None:
    _, database, _ = deployment
    with database.begin() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, metadata) == []
        config = Config()
        config.set_main_option("script_location", "blindmatch.service:migrations")
        head = ScriptDirectory.from_config(config).get_current_head()
        assert context.get_current_revision() == head
        assert head is not None


def test_sqlite_is_durable_wal(tmp_path: Path) -> None:
    settings = Settings(tmp_path / "data")
    database, _ = bootstrap(settings)
    with database.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    database.dispose()
    mode = stat.S_IMODE((settings.data_dir / "blindmatch.sqlite3").stat().st_mode)
    assert mode == 0o600


def _chain(database: Database, entries: int) -> None:
    with database.begin() as connection:
        for number in range(entries):
            audit.append(connection, "test", {"n": number})


def _verify(database: Database) -> audit.AuditReport:
    with database.begin() as connection:
        return audit.verify(connection)


def test_audit_chain_detects_edits_removals_reorders(
    deployment: tuple[Settings, Database, KeyStore],
) -> None:
    _, database, _ = deployment
    _chain(database, 6)
    report = _verify(database)
    assert report.ok
    assert report.entries == 7  # the first key epoch, then six
    log = audit_log.c
    with database.begin() as connection:
        original = connection.execute(sa.select(audit_log).where(log.seq == 3)).one()._asdict()
        connection.execute(sa.update(audit_log).where(log.seq == 3).values(payload='{"n":99}'))
    edited = _verify(database)
    assert not edited.ok
    assert edited.bad_seq == 3
    assert edited.reason == "an entry was edited"

    with database.begin() as connection:
        connection.execute(
            sa.update(audit_log).where(log.seq == 3).values(payload=original["payload"])
        )
    assert _verify(database).ok

    with database.begin() as connection:  # reorder: swap two entries' positions
        connection.execute(sa.update(audit_log).where(log.seq == 4).values(seq=-4))
        connection.execute(sa.update(audit_log).where(log.seq == 5).values(seq=4))
        connection.execute(sa.update(audit_log).where(log.seq == -4).values(seq=5))
    reordered = _verify(database)
    assert not reordered.ok
    assert reordered.bad_seq == 4

    with database.begin() as connection:
        connection.execute(sa.update(audit_log).where(log.seq == 4).values(seq=-4))
        connection.execute(sa.update(audit_log).where(log.seq == 5).values(seq=4))
        connection.execute(sa.update(audit_log).where(log.seq == -4).values(seq=5))
    assert _verify(database).ok

    with database.begin() as connection:
        connection.execute(sa.delete(audit_log).where(log.seq == 2))
    removed = _verify(database)
    assert not removed.ok
    assert removed.bad_seq == 2


def test_audit_chain_detects_a_removed_tail(
    deployment: tuple[Settings, Database, KeyStore],
) -> None:
    _, database, _ = deployment
    _chain(database, 3)
    with database.begin() as connection:
        connection.execute(sa.delete(audit_log).where(audit_log.c.seq == 4))
    truncated = _verify(database)
    assert not truncated.ok
    assert truncated.reason == "the chain does not end at the recorded head"


def test_quota_holds_under_concurrent_reservations(
    deployment: tuple[Settings, Database, KeyStore],
) -> None:
    _, database, _ = deployment
    with database.begin() as connection:
        platform, _ = platforms.create(connection, "racer", 50)
    granted: list[int] = []
    refused: list[int] = []

    def reserve() -> None:
        for _ in range(5):
            try:
                with database.begin() as connection:
                    quotas.reserve(connection, platform, 3)
                granted.append(3)
            except TooManyRequests:
                refused.append(3)

    threads = [threading.Thread(target=reserve) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(granted) == 48  # 16 reservations of 3 fit in 50, never 17
    assert len(refused) == 30 - 16
    with database.begin() as connection:
        assert quotas.remaining(connection, platform) == 2


def test_key_files_are_owner_only_and_rotation_keeps_a_grace_period(
    deployment: tuple[Settings, Database, KeyStore],
) -> None:
    settings, _, keys = deployment
    assert stat.S_IMODE(settings.keys_dir.stat().st_mode) == 0o700
    for path in settings.keys_dir.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = keys.current()
    rotated = keys.rotate()
    assert rotated.epoch == first.epoch + 1
    assert rotated.retires_at is None
    old = keys.list()[0]
    assert old.retires_at is not None
    assert old.accepts(old.retires_at - 1)
    assert not old.accepts(old.retires_at)
    assert keys.secret(rotated.epoch).key_id == rotated.key_id
    assert stat.S_IMODE((settings.keys_dir / "epoch-1.key").stat().st_mode) == 0o600


def test_closed_days_enter_the_audit_log_once_under_concurrent_callers(
    deployment: tuple[Settings, Database, KeyStore],
) -> None:
    _, database, _ = deployment
    with database.begin() as connection:
        platform, _ = platforms.create(connection, "daily", 1000)
        quotas.reserve(connection, platform, 7)  # today: not closed, not audited
        yesterday = now() // quotas.SECONDS_PER_DAY - 1
        connection.execute(
            sa.insert(quota_usage).values(
                platform=platform.id, day=yesterday, used=1234, audited=False
            )
        )
    written: list[int] = []
    barrier = threading.Barrier(4)

    def close_days() -> None:
        barrier.wait()
        with database.begin() as connection:
            written.append(quotas.audit_closed_days(connection))

    threads = [threading.Thread(target=close_days) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(written) == [0, 0, 0, 1]
    with database.begin() as connection:
        entries = connection.execute(
            sa.select(audit_log.c.seq, audit_log.c.payload).where(
                audit_log.c.kind == "platform_daily_elements"
            )
        ).all()
        assert [json.loads(e.payload) for e in entries] == [
            {"platform": "daily", "day": yesterday, "elements": 1234}
        ]
        assert quotas.audit_closed_days(connection) == 0
    assert _verify(database).ok
    with database.begin() as connection:
        connection.execute(
            sa.update(audit_log)
            .where(audit_log.c.seq == entries[0].seq)
            .values(payload=entries[0].payload.replace("1234", "12"))
        )
    edited = _verify(database)
    assert not edited.ok
    assert edited.bad_seq == entries[0].seq
