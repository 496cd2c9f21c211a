"""Key epochs: the VOPRF key of each epoch, in an owner-only file; its public half in a row.

Theory of operation
-------------------
The secret key of epoch ``n`` is ``keys/epoch-<n>.key`` (the 78-byte serialisation of
:class:`~blindmatch.psi.keys.SecretKey`, mode 0600, directory 0700); the ``epochs`` table
holds its public key, key id and, once rotated out, when it stops answering. A rotation
inserts the new epoch's row first (the primary key makes two concurrent rotations
conflict before either writes a file), writes the file, then commits. The newest epoch is
current; an older one keeps answering evaluation requests until its ``retires_at``, so
platforms holding its index keep matching while they download the new one.

Key files never change once written, so each process caches the keys it loaded: that is
a cache of a file, not state.

The publication key (``keys/publication.key``, an Ed25519 seed, 0600) signs every
manifest; platforms pin its public half (``admin keys show``, ``GET /v1/keys``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from nacl.signing import SigningKey
from sqlalchemy.engine import Connection

from blindmatch.errors import KeyFormatError
from blindmatch.psi.keys import SecretKey
from blindmatch.service import audit
from blindmatch.service.errors import ConfigurationError
from blindmatch.service.schema import epochs
from blindmatch.service.settings import Settings
from blindmatch.service.storage import Database, now

__all__ = ["EpochInfo", "KeyStore"]

_PUBLICATION_KEY = "publication.key"


@dataclass(frozen=True, slots=True)
class EpochInfo:
    """One key epoch as published: never the secret."""

    epoch: int
    key_id: bytes
    public_key: bytes
    created_at: int
    retires_at: int | None

    def accepts(self, at: int) -> bool:
        """Whether the epoch still answers at time ``at`` (current, or within its grace)."""
        return self.retires_at is None or at < self.retires_at

    def to_json(self) -> dict[str, object]:
        """The JSON ``GET /v1/keys`` and ``admin keys`` show."""
        return {
            "epoch": self.epoch,
            "key_id": self.key_id.hex(),
            "public_key": self.public_key.hex(),
            "created_at": self.created_at,
            "retires_at": self.retires_at,
        }


def _write_private(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(temporary, 0o600)
    temporary.replace(path)


def _info(row: sa.Row[tuple[int, bytes, bytes, int, int | None]]) -> EpochInfo:
    return EpochInfo(row.epoch, row.key_id, row.public_key, row.created_at, row.retires_at)


class KeyStore:
    """The key epochs of one deployment (files in the data directory, rows in the database)."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self._settings = settings
        self._database = database
        self._cache: dict[int, SecretKey] = {}
        self._signing: SigningKey | None = None

    def _path(self, epoch: int) -> Path:
        return self._settings.keys_dir / f"epoch-{epoch}.key"

    def ensure(self) -> None:
        """Create epoch 0 and the publication key when missing (start-up; idempotent)."""
        publication = self._settings.keys_dir / _PUBLICATION_KEY
        if not publication.exists():
            _write_private(publication, SigningKey.generate().encode())
        with self._database.begin() as connection:
            if connection.execute(sa.select(sa.func.count()).select_from(epochs)).scalar_one():
                return
            self._create(connection, 0)

    def _create(self, connection: Connection, epoch: int) -> SecretKey:
        key = SecretKey.generate(epoch=epoch)
        connection.execute(
            sa.insert(epochs).values(
                epoch=epoch,
                key_id=key.key_id,
                public_key=bytes(key.public_key.element),
                created_at=now(),
                retires_at=None,
            )
        )
        _write_private(self._path(epoch), key.to_bytes())
        audit.append(connection, "key_epoch_created", {"epoch": epoch, "key_id": key.key_id.hex()})
        return key

    def rotate(self) -> EpochInfo:
        """Start a new epoch; the previous ones answer for the grace period from now on."""
        with self._database.begin() as connection:
            current = connection.execute(sa.select(sa.func.max(epochs.c.epoch))).scalar_one()
            epoch = 0 if current is None else current + 1
            retires = now() + self._settings.limits.grace_seconds
            connection.execute(
                sa.update(epochs)
                .where(epochs.c.retires_at.is_(None) | (epochs.c.retires_at > retires))
                .values(retires_at=retires)
            )
            self._create(connection, epoch)
        return self.current()

    def list(self, connection: Connection | None = None) -> list[EpochInfo]:
        """Every epoch, oldest first."""
        query = sa.select(epochs).order_by(epochs.c.epoch)
        if connection is not None:
            return [_info(row) for row in connection.execute(query)]
        with self._database.begin() as own:
            return [_info(row) for row in own.execute(query)]

    def current(self, connection: Connection | None = None) -> EpochInfo:
        """The newest epoch.

        Raises:
            ConfigurationError: no epoch yet (the service was never started).
        """
        found = self.list(connection)
        if not found:
            raise ConfigurationError("no key epoch: run `blindmatch serve` or `admin keys rotate`")
        return found[-1]

    def secret(self, epoch: int) -> SecretKey:
        """The secret key of ``epoch`` (from its file, then cached).

        Raises:
            ConfigurationError: the file is missing or malformed.
        """
        key = self._cache.get(epoch)
        if key is None:
            try:
                key = SecretKey.from_bytes(self._path(epoch).read_bytes())
            except (OSError, KeyFormatError):
                raise ConfigurationError(f"the key file of epoch {epoch} is unreadable") from None
            if key.epoch != epoch:
                raise ConfigurationError(f"the key file of epoch {epoch} names another epoch")
            self._cache[epoch] = key
        return key

    def signing_key(self) -> SigningKey:
        """The Ed25519 key that signs manifests.

        Raises:
            ConfigurationError: the file is missing or malformed.
        """
        if self._signing is None:
            try:
                self._signing = SigningKey(
                    (self._settings.keys_dir / _PUBLICATION_KEY).read_bytes()
                )
            except (OSError, ValueError):
                raise ConfigurationError("the publication key file is unreadable") from None
        return self._signing
