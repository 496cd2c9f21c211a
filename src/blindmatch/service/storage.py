"""The database: one engine per process, SQLite or PostgreSQL by URL, migrated by Alembic.

Theory of operation
-------------------
Durability. A report is acknowledged only after its transaction is durably committed.
On SQLite the database runs in WAL mode with ``synchronous=FULL`` (WAL alone, with the
default ``NORMAL``, may lose the last transactions on power loss); on PostgreSQL the
default ``synchronous_commit=on`` gives the same guarantee.

Concurrency. Several worker processes share the database and nothing else. Every write
that depends on what it read (quotas, rate limits, the audit chain) is one conditional
``UPDATE`` or runs under a row lock (``SELECT ... FOR UPDATE``, which SQLAlchemy leaves out
on SQLite). SQLite has no row locks: there every transaction starts with ``BEGIN
IMMEDIATE``, so writers are serialised by the database file lock instead of failing with
``database is locked`` when a reader tries to upgrade; ``busy_timeout`` makes them wait.

Exclusive sections. Some work must run in one process at a time across every worker
and every instance sharing the database: start-up (migrations and the first rows, which
two instances starting at once would otherwise both create) and a publisher's poll (so
that two instances never spend cores building the same version, one of them in vain).
:meth:`Database.exclusive` takes a PostgreSQL session advisory lock (released when its
connection ends, so a killed holder never leaves it taken); on SQLite, which is
one-machine only, an ``flock`` on a file beside the database does the same.

Migrations. :func:`migrate` runs the Alembic migrations shipped in this package
(``blindmatch.service:migrations``) through Alembic's API, on the connection it is given:
no ini file, no migration runner of our own. ``serve`` and ``admin`` call it on start.
"""

from __future__ import annotations

import contextlib
import fcntl
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from blindmatch.service.errors import ConfigurationError
from blindmatch.service.settings import Settings

__all__ = ["Database", "migrate", "now"]

_BUSY_TIMEOUT_MS = 30_000


def now() -> int:
    """The current time in integer Unix seconds (what every table stores)."""
    return int(time.time())


def _normalise_url(url: str) -> str:
    # "postgresql://" alone would pick psycopg2, which we do not ship: name psycopg 3.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_events(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """The engine of one process, with the per-dialect settings above.

    Raises:
        ConfigurationError: the URL names a database we do not support.
    """

    def __init__(self, settings: Settings) -> None:
        url = _normalise_url(settings.database_url)
        try:
            parsed = sa.engine.make_url(url)
        except sa.exc.ArgumentError:
            raise ConfigurationError("the database URL is not a valid URL") from None
        if parsed.get_backend_name() not in ("sqlite", "postgresql"):
            raise ConfigurationError("the database must be SQLite or PostgreSQL")
        self.dialect = parsed.get_backend_name()
        self._lock_dir = settings.data_dir
        if self.dialect == "sqlite":
            self.engine = sa.create_engine(url, connect_args={"timeout": 30})
            _sqlite_events(self.engine)
        else:
            self.engine = sa.create_engine(url, pool_pre_ping=True)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction, committed when the block ends without an exception."""
        with self.engine.begin() as connection:
            yield connection

    @contextmanager
    def exclusive(self, name: str, *, wait: bool = True) -> Iterator[bool]:
        """Hold the deployment-wide lock ``name`` for the block (module docstring).

        Yields ``True`` when the lock is held; with ``wait=False``, ``False`` at once when
        another process holds it (the block then runs without it and should skip its work).
        """
        if self.dialect == "sqlite":
            # The file is empty: only its lock matters (closing it releases the lock).
            with open(self._lock_dir / f".{name}.lock", "a+b") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                    taken = True
                except BlockingIOError:
                    taken = False
                yield taken
            return
        key = zlib.crc32(b"blindmatch/" + name.encode())
        with self.engine.connect() as connection:
            function = "pg_advisory_lock" if wait else "pg_try_advisory_lock"
            held = connection.execute(sa.text(f"SELECT {function}(:key)"), {"key": key}).scalar()
            connection.commit()
            if held is False:
                yield False
                return
            try:
                yield True
            finally:
                # A connection lost meanwhile took its lock with it: nothing to release.
                with contextlib.suppress(sa.exc.SQLAlchemyError):
                    connection.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": key})
                    connection.commit()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def migrate(database: Database) -> None:
    """Bring the schema to the newest revision (Alembic ``upgrade head``).

    Raises:
        ConfigurationError: the database cannot be reached or migrated.
    """
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", "blindmatch.service:migrations")
    try:
        with database.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")
    except sa.exc.OperationalError as exc:
        raise ConfigurationError(
            f"cannot reach or migrate the database ({type(exc.orig).__name__})"
        ) from None
