"""The background publisher: rebuild the indexes when the live reports changed.

``blindmatch serve`` starts it as its own process (``python -m
blindmatch.service.publisher``) so that index builds, which use every core through the
process-pool builder, never run inside a worker serving requests. It polls the database
every ``publish_interval`` seconds, publishes when :func:`needs_publication` says so,
prunes expired rate-limit windows and matching sessions, and exits when its parent is
gone. Several publishers (several hosts) are harmless: the version number is claimed in
the database and a loser discards its build.
"""

from __future__ import annotations

import logging
import os
import sys
import time

import sqlalchemy as sa

from blindmatch.errors import BlindmatchError
from blindmatch.service.epochs import KeyStore
from blindmatch.service.publication import needs_publication, publish
from blindmatch.service.schema import match_batches, match_sessions, rate_limits
from blindmatch.service.settings import Settings
from blindmatch.service.storage import Database, now

__all__ = ["main", "publish_if_needed", "run"]

log = logging.getLogger("blindmatch.service.publisher")


def publish_if_needed(settings: Settings, database: Database, keys: KeyStore) -> int | None:
    """Publish when the live reports changed; return the new version, else ``None``."""
    with database.begin() as connection:
        epoch = keys.current(connection).epoch
        wanted = needs_publication(connection, epoch)
    if not wanted:
        return None
    return publish(settings, database, keys)


def _prune(settings: Settings, database: Database) -> None:
    at = now()
    with database.begin() as connection:
        connection.execute(sa.delete(rate_limits).where(rate_limits.c.window < at // 3600 - 1))
        expired = sa.select(match_sessions.c.id).where(
            match_sessions.c.created_at < at - settings.limits.session_seconds
        )
        connection.execute(sa.delete(match_batches).where(match_batches.c.session.in_(expired)))


def run(settings: Settings, parent: int | None = None) -> None:
    """Poll and publish until the parent process is gone."""
    database = Database(settings)
    keys = KeyStore(settings, database)
    while parent is None or os.getppid() == parent:
        try:
            version = publish_if_needed(settings, database, keys)
            if version is not None:
                log.info("published version %d", version)
            _prune(settings, database)
        except (BlindmatchError, sa.exc.SQLAlchemyError) as exc:
            log.error("publication failed: %s", type(exc).__name__)
        deadline = time.monotonic() + settings.limits.publish_interval
        while time.monotonic() < deadline:
            if parent is not None and os.getppid() != parent:
                return
            time.sleep(0.5)


def main() -> None:
    """Entry point of ``python -m blindmatch.service.publisher``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s publisher %(message)s")
    run(Settings.from_env(), os.getppid())


if __name__ == "__main__":
    main()
    sys.exit(0)
