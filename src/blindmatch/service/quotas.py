"""Per-platform daily element quotas, enforced atomically in the database.

Theory of operation
-------------------
A reservation is one conditional ``UPDATE quota_usage SET used = used + n WHERE ... AND
used + n <= limit``: whichever worker or host runs it, the database applies it atomically,
so concurrent requests can never evaluate more than the quota together. The day's row is
created on the first reservation of the day (inside a savepoint, so a concurrent insert
of the same row just means: try the update again).

Audit. Once a UTC day is over its counts no longer change (reservations always go to
today's row), and :func:`audit_closed_days` writes each platform's count of each closed
day into the audit log exactly once: the publisher calls it every poll, so the counts
enter the chain within one publish interval of midnight whether or not the platform
comes back, and the first reservation of a day calls it for its platform too (a
deployment run without a publisher). Exactly once: a conditional ``UPDATE ... SET
audited = true WHERE audited = false`` in the audit entry's transaction decides which
caller writes it. A reservation happens before a single element is
evaluated; a request that fails after reserving gives its elements back (:func:`refund`).
Days are UTC days; Retry-After points at the next midnight UTC.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from blindmatch.service import audit
from blindmatch.service.errors import TooManyRequests
from blindmatch.service.platforms import Platform
from blindmatch.service.schema import platforms, quota_usage
from blindmatch.service.storage import now

__all__ = ["SECONDS_PER_DAY", "audit_closed_days", "refund", "remaining", "reserve"]

SECONDS_PER_DAY = 86_400


def _today(at: int) -> int:
    return at // SECONDS_PER_DAY


def _exhausted(at: int) -> TooManyRequests:
    retry = SECONDS_PER_DAY - at % SECONDS_PER_DAY
    return TooManyRequests(
        "the platform's daily element quota is spent", retry_after=retry, code="quota_exhausted"
    )


def remaining(connection: Connection, platform: Platform) -> int:
    """Elements the platform may still have evaluated today."""
    used = connection.execute(
        sa.select(quota_usage.c.used).where(
            quota_usage.c.platform == platform.id, quota_usage.c.day == _today(now())
        )
    ).scalar_one_or_none()
    return max(0, platform.daily_elements - (used or 0))


def reserve(connection: Connection, platform: Platform, count: int) -> None:
    """Reserve ``count`` elements of today's quota, or refuse them all.

    Raises:
        TooManyRequests: the quota cannot cover ``count`` (nothing is reserved).
    """
    at = now()
    day = _today(at)
    if count > platform.daily_elements:
        raise _exhausted(at)
    for _ in range(2):
        updated = connection.execute(
            sa.update(quota_usage)
            .where(
                quota_usage.c.platform == platform.id,
                quota_usage.c.day == day,
                quota_usage.c.used + count <= platform.daily_elements,
            )
            .values(used=quota_usage.c.used + count)
        )
        if updated.rowcount == 1:
            return
        exists = connection.execute(
            sa.select(quota_usage.c.used).where(
                quota_usage.c.platform == platform.id, quota_usage.c.day == day
            )
        ).first()
        if exists is not None:
            raise _exhausted(at)
        try:
            with connection.begin_nested():
                connection.execute(
                    sa.insert(quota_usage).values(
                        platform=platform.id, day=day, used=count, audited=False
                    )
                )
        except sa.exc.IntegrityError:
            continue  # another worker created today's row first: update it instead
        audit_closed_days(connection, platform)
        return
    raise _exhausted(at)


def audit_closed_days(connection: Connection, platform: Platform | None = None) -> int:
    """Write the element counts of closed UTC days not yet in the audit log (of one
    platform, or of all); return how many entries were written.

    Runs in the caller's transaction: an entry exists exactly when its row is marked.
    """
    today = _today(now())
    query = (
        sa.select(quota_usage.c.platform, quota_usage.c.day, quota_usage.c.used, platforms.c.name)
        .join(platforms, platforms.c.id == quota_usage.c.platform)
        .where(quota_usage.c.day < today, quota_usage.c.audited.is_(False))
        .order_by(quota_usage.c.day, platforms.c.name)
    )
    if platform is not None:
        query = query.where(quota_usage.c.platform == platform.id)
    written = 0
    for row in connection.execute(query).all():
        claimed = connection.execute(
            sa.update(quota_usage)
            .where(
                quota_usage.c.platform == row.platform,
                quota_usage.c.day == row.day,
                quota_usage.c.audited.is_(False),
            )
            .values(audited=True)
        )
        if claimed.rowcount != 1:
            continue  # another publisher or worker wrote it first
        audit.append(
            connection,
            "platform_daily_elements",
            {"platform": row.name, "day": row.day, "elements": row.used},
        )
        written += 1
    return written


def refund(connection: Connection, platform: Platform, count: int) -> None:
    """Give back ``count`` elements reserved today and not evaluated."""
    connection.execute(
        sa.update(quota_usage)
        .where(quota_usage.c.platform == platform.id, quota_usage.c.day == _today(now()))
        .values(used=quota_usage.c.used - count)
    )
