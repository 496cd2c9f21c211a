"""Platforms and their API keys.

An API key is ``bmk_<public id>_<secret>``: the public id finds the row, the secret is
checked against the stored SHA-256 digest in constant time (:mod:`~blindmatch.service.tokens`).
The key is shown once, by ``admin platform create``; the service never stores or logs it.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from blindmatch.service import audit, tokens
from blindmatch.service.errors import Conflict, NotFound, Unauthorized, Unprocessable
from blindmatch.service.schema import platforms
from blindmatch.service.storage import now

__all__ = ["Platform", "authenticate", "create", "disable", "list_platforms"]

_PREFIX = "bmk"
_MAX_NAME = 200


@dataclass(frozen=True, slots=True)
class Platform:
    """One platform as the operator sees it (never its key)."""

    id: int
    public_id: str
    name: str
    daily_elements: int
    disabled: bool
    created_at: int

    def to_json(self) -> dict[str, object]:
        """The JSON of ``admin platform list``."""
        return {
            "name": self.name,
            "key_id": self.public_id,
            "daily_elements": self.daily_elements,
            "disabled": self.disabled,
            "created_at": self.created_at,
        }


def _platform(row: sa.Row[tuple[object, ...]]) -> Platform:
    m = row._mapping
    return Platform(
        m["id"], m["public_id"], m["name"], m["daily_elements"], m["disabled"], m["created_at"]
    )


def create(connection: Connection, name: str, daily_elements: int) -> tuple[Platform, str]:
    """Register a platform; return it and its API key (the only time the key exists).

    Raises:
        Unprocessable: an empty or over-long name, or a negative quota.
        Conflict: a platform of that name exists.
    """
    if not name or len(name) > _MAX_NAME or not name.isprintable():
        raise Unprocessable(f"a platform name is 1..{_MAX_NAME} printable characters")
    if daily_elements < 0:
        raise Unprocessable("the daily element quota is not negative")
    exists = connection.execute(sa.select(platforms.c.id).where(platforms.c.name == name))
    if exists.first() is not None:
        raise Conflict("a platform of that name exists", code="platform_exists")
    public_id = tokens.new_public_id(8)
    key = f"{_PREFIX}_{public_id}_{tokens.new_secret()}"
    connection.execute(
        sa.insert(platforms).values(
            public_id=public_id,
            name=name,
            key_hash=tokens.digest(key),
            daily_elements=daily_elements,
            disabled=False,
            created_at=now(),
        )
    )
    audit.append(
        connection,
        "platform_created",
        {"name": name, "key_id": public_id, "daily_elements": daily_elements},
    )
    row = connection.execute(sa.select(platforms).where(platforms.c.public_id == public_id)).one()
    return _platform(row), key


def list_platforms(connection: Connection) -> list[Platform]:
    """Every platform, by name."""
    rows = connection.execute(sa.select(platforms).order_by(platforms.c.name))
    return [_platform(row) for row in rows]


def disable(connection: Connection, name: str) -> Platform:
    """Disable a platform: its key stops working at once.

    Raises:
        NotFound: no platform of that name.
    """
    result = connection.execute(
        sa.update(platforms).where(platforms.c.name == name).values(disabled=True)
    )
    if result.rowcount != 1:
        raise NotFound("no platform of that name", code="unknown_platform")
    audit.append(connection, "platform_disabled", {"name": name})
    row = connection.execute(sa.select(platforms).where(platforms.c.name == name)).one()
    return _platform(row)


def authenticate(connection: Connection, authorization: str | None) -> Platform:
    """The platform an ``Authorization: Bearer <key>`` header names.

    Raises:
        Unauthorized: no key, a malformed or unknown key (``invalid_api_key``) or a
            disabled platform (``platform_disabled``).
    """
    if not authorization or not authorization.startswith("Bearer "):
        raise Unauthorized("an API key is required (Authorization: Bearer)", code="missing_api_key")
    key = authorization[len("Bearer ") :].strip()
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != _PREFIX or not parts[1].isalnum():
        raise Unauthorized("the API key is not valid", code="invalid_api_key")
    row = connection.execute(
        sa.select(platforms).where(platforms.c.public_id == parts[1][:32])
    ).first()
    # Compare against a dummy digest when the id is unknown, so both paths do the same work.
    stored = bytes(32) if row is None else row.key_hash
    if not tokens.matches(key, stored) or row is None:
        raise Unauthorized("the API key is not valid", code="invalid_api_key")
    platform = _platform(row)
    if platform.disabled:
        raise Unauthorized("the platform is disabled", code="platform_disabled")
    return platform
