"""Start-up shared by ``serve``, ``admin`` and the workers: directory, schema, first keys."""

from __future__ import annotations

from blindmatch.service import audit, intake
from blindmatch.service.epochs import KeyStore
from blindmatch.service.settings import Settings
from blindmatch.service.storage import Database, migrate

__all__ = ["bootstrap"]


def bootstrap(settings: Settings) -> tuple[Database, KeyStore]:
    """Prepare the data directory, migrate the schema, create the first epoch (idempotent).

    Raises:
        ConfigurationError: the data directory or the database is unusable.
    """
    settings.prepare()
    database = Database(settings)
    keys = KeyStore(settings, database)
    # Several instances may start at once on one database: one at a time creates what is
    # missing, the others then find it (docs/deployment.md, "Several instances").
    with database.exclusive("bootstrap"):
        migrate(database)
        if database.dialect == "sqlite":
            # The WAL and shared-memory files SQLite creates take the database file's mode.
            sqlite_file = settings.data_dir / "blindmatch.sqlite3"
            if sqlite_file.exists():
                sqlite_file.chmod(0o600)
        with database.begin() as connection:
            audit.ensure_head(connection)
            intake.ensure_salt(connection)
        keys.ensure()
    return database, keys
