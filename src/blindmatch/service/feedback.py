"""Platform feedback on matches, and the suspension of disputed reports pending review.

A platform that matched a handle reports what it did: ``actioned`` (it was the reported
kind of content) or ``not_reported_kind`` (a dispute). One verdict per platform and
report, the latest kept. When disputes from at least ``dispute_threshold`` distinct
platforms, made since the report was last reviewed, accumulate, the report is suspended:
its handles are revoked in the next manifest and it leaves the next index, until an
operator reviews it (``admin reports review``, then ``reinstate`` or ``remove``).

This is the defence against hash poisoning that the list itself can offer (SECURITY.md):
one platform cannot suspend a report, and a reporter cannot see who disputed.

The operator looks a report up by its id or, for an imported one, by the reference it
has in the operator's own list (:func:`find`, ``admin reports show``): its status, source,
fingerprint counts per signal and feedback counts, never its hashes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from blindmatch.service import audit
from blindmatch.service.errors import Conflict, NotFound
from blindmatch.service.platforms import Platform
from blindmatch.service.schema import feedback, fingerprints, handles, reports, shared_handles
from blindmatch.service.storage import now

__all__ = [
    "DISPUTE",
    "ReportSummary",
    "Suspended",
    "VERDICTS",
    "find",
    "record",
    "reinstate",
    "remove",
    "suspended",
]

DISPUTE = "not_reported_kind"
VERDICTS = ("actioned", DISPUTE)


def record(
    connection: Connection, platform: Platform, handle: bytes, verdict: str, threshold: int
) -> str:
    """Record a platform's verdict on a matched handle; return the report's status after it.

    Raises:
        NotFound: the handle belongs to no publication (``unknown_handle``).
    """
    columns = (reports.c.id, reports.c.report_id, reports.c.status, reports.c.reviewed_at)
    row = connection.execute(
        sa.select(*columns)
        .join(handles, handles.c.report == reports.c.id)
        .where(handles.c.handle == handle)
        .order_by(handles.c.publication.desc())
        .limit(1)
    ).first()
    if row is None:
        raise NotFound("no published report has that handle", code="unknown_handle")
    # A compact exact index's handle stands for every report of one hash (shared_handles):
    # the verdict is on each of them.
    shared = connection.execute(
        sa.select(*columns)
        .join(shared_handles, shared_handles.c.report == reports.c.id)
        .where(shared_handles.c.handle == handle, reports.c.id != row.id)
        .distinct()
        .order_by(reports.c.id)
    ).all()
    statuses = [_record_one(connection, platform, r, verdict, threshold) for r in [row, *shared]]
    return "active" if "active" in statuses else statuses[0]


def _record_one(
    connection: Connection, platform: Platform, row: Any, verdict: str, threshold: int
) -> str:
    """:func:`record` for one report row."""
    at = now()
    updated = connection.execute(
        sa.update(feedback)
        .where(feedback.c.report == row.id, feedback.c.platform == platform.id)
        .values(verdict=verdict, created_at=at)
    )
    if updated.rowcount == 0:
        try:
            with connection.begin_nested():
                connection.execute(
                    sa.insert(feedback).values(
                        report=row.id, platform=platform.id, verdict=verdict, created_at=at
                    )
                )
        except sa.exc.IntegrityError:  # a concurrent first verdict of the same platform
            connection.execute(
                sa.update(feedback)
                .where(feedback.c.report == row.id, feedback.c.platform == platform.id)
                .values(verdict=verdict, created_at=at)
            )
    if verdict != DISPUTE or row.status != "active":
        return str(row.status)
    since = row.reviewed_at if row.reviewed_at is not None else -1
    disputes = connection.execute(
        sa.select(sa.func.count(sa.distinct(feedback.c.platform))).where(
            feedback.c.report == row.id,
            feedback.c.verdict == DISPUTE,
            feedback.c.created_at >= since,
        )
    ).scalar_one()
    if disputes < threshold:
        return "active"
    suspended_now = connection.execute(
        sa.update(reports)
        .where(reports.c.id == row.id, reports.c.status == "active")
        .values(status="suspended")
    )
    if suspended_now.rowcount == 1:
        audit.append(
            connection, "suspension", {"report_id": row.report_id, "disputes": int(disputes)}
        )
    return "suspended"


@dataclass(frozen=True, slots=True)
class Suspended:
    """A report awaiting review, with its feedback counts (never its hashes)."""

    report_id: str
    created_at: int
    disputes: int
    actioned: int
    reference: str | None = None

    def to_json(self) -> dict[str, object]:
        """The JSON of ``admin reports review``."""
        return {
            "report_id": self.report_id,
            "reference": self.reference,
            "created_at": self.created_at,
            "disputes": self.disputes,
            "actioned": self.actioned,
        }


def _verdicts(connection: Connection, report: int) -> dict[str, int]:
    return dict(
        connection.execute(
            sa.select(feedback.c.verdict, sa.func.count())
            .where(feedback.c.report == report)
            .group_by(feedback.c.verdict)
        ).all()
    )


def suspended(connection: Connection) -> list[Suspended]:
    """Every suspended report, oldest first."""
    rows = connection.execute(
        sa.select(reports.c.id, reports.c.report_id, reports.c.created_at, reports.c.reference)
        .where(reports.c.status == "suspended")
        .order_by(reports.c.id)
    ).all()
    found = []
    for row in rows:
        counts = _verdicts(connection, row.id)
        found.append(
            Suspended(
                row.report_id,
                row.created_at,
                counts.get(DISPUTE, 0),
                counts.get("actioned", 0),
                row.reference,
            )
        )
    return found


@dataclass(frozen=True, slots=True)
class ReportSummary:
    """What the operator may see of a report: never its hashes."""

    report_id: str
    reference: str | None
    source: str
    status: str
    created_at: int
    fingerprints: dict[str, int]
    disputes: int
    actioned: int

    def to_json(self) -> dict[str, object]:
        """The JSON of ``admin reports show``."""
        return {
            "report_id": self.report_id,
            "reference": self.reference,
            "source": self.source,
            "status": self.status,
            "created_at": self.created_at,
            "fingerprints": self.fingerprints,
            "disputes": self.disputes,
            "actioned": self.actioned,
        }


def find(connection: Connection, key: str) -> list[ReportSummary]:
    """The reports whose id or import reference is ``key``, oldest first.

    Raises:
        NotFound: none (``unknown_report``).
    """
    rows = connection.execute(
        sa.select(reports)
        .where(sa.or_(reports.c.report_id == key[:64], reports.c.reference == key[:256]))
        .order_by(reports.c.id)
    ).all()
    if not rows:
        raise NotFound("no report has that id or reference", code="unknown_report")
    found = []
    for row in rows:
        signals: dict[str, int] = dict(
            connection.execute(
                sa.select(fingerprints.c.signal, sa.func.count())
                .where(fingerprints.c.report == row.id)
                .group_by(fingerprints.c.signal)
            ).all()
        )
        counts = _verdicts(connection, row.id)
        found.append(
            ReportSummary(
                row.report_id,
                row.reference,
                row.source,
                row.status,
                row.created_at,
                dict(sorted(signals.items())),
                counts.get(DISPUTE, 0),
                counts.get("actioned", 0),
            )
        )
    return found


def _decide(connection: Connection, report_id: str, status: str, kind: str) -> None:
    values: dict[str, object] = {"status": status, "reviewed_at": now()}
    if status == "removed":
        values["submission_digest"] = None
        values["withdrawn_at"] = now()
    updated = connection.execute(
        sa.update(reports)
        .where(reports.c.report_id == report_id, reports.c.status == "suspended")
        .values(**values)
    )
    if updated.rowcount != 1:
        raise Conflict("no suspended report of that id", code="not_suspended")
    audit.append(connection, kind, {"report_id": report_id})


def reinstate(connection: Connection, report_id: str) -> None:
    """Publish a suspended report again; only disputes made after now can suspend it again.

    Raises:
        Conflict: no suspended report of that id.
    """
    _decide(connection, report_id, "active", "reinstatement")


def remove(connection: Connection, report_id: str) -> None:
    """Remove a suspended report for good (as if withdrawn).

    Raises:
        Conflict: no suspended report of that id.
    """
    _decide(connection, report_id, "removed", "removal")
