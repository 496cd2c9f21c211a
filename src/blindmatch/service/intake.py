"""Anonymous intake: a person reports fingerprints, gets a receipt, reads status, withdraws.

Theory of operation
-------------------
A submission holds fingerprints only (PDQ with quality, MD5, SHA-256, vPDQ frames), the
content kind and an age attestation. It is normalised (hex to bytes, PDQ below quality 50
refused with the reason, vPDQ frames below it skipped, duplicates within it merged) and
stored in one transaction with its audit entry; the answer (a random report id and a
receipt of 256 bits) is sent only after that transaction committed durably
(:mod:`blindmatch.service.storage`). The receipt is stored as its SHA-256 digest and is
the only way to read the report's status or withdraw it; it travels in the
``Blindmatch-Receipt`` header, never in a URL (URLs end up in access logs).

Duplicates. The digest of the sorted fingerprint set is unique among live reports: the
same set again is refused (409 ``duplicate_submission``), which also makes a client's
retry after a lost answer visible instead of doubling the report. Withdrawal clears it.

Rate limits. Intakes are counted per client and hour in the database (every worker sees
the same counts) under ``SHA-256(salt || address || hour)``, where the salt is a random
value of the deployment: the table never holds an address.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from blindmatch.fingerprint.signals import PdqSignal
from blindmatch.service import audit, tokens
from blindmatch.service.errors import Conflict, TooManyRequests, Unauthorized, Unprocessable
from blindmatch.service.models import (
    ExactFingerprint,
    IntakeRequest,
    PdqFingerprint,
    ReportStatus,
)
from blindmatch.service.schema import (
    fingerprints,
    handles,
    publications,
    rate_limits,
    reports,
    service_state,
    shared_handles,
)
from blindmatch.service.settings import Limits
from blindmatch.service.storage import now

__all__ = [
    "Submission",
    "check_rate",
    "client_key",
    "ensure_salt",
    "normalise",
    "status",
    "store_report",
    "submit",
    "withdraw",
]

_EXACT_BYTES = {"md5": 16, "sha256": 32}
_SALT = "rate_limit_salt"
_HOUR = 3600


@dataclass(frozen=True, slots=True)
class Submission:
    """A validated submission: ``(signal, hash bytes, quality)`` entries, sorted, distinct."""

    content_kind: str
    age_attestation: str
    entries: tuple[tuple[str, bytes, int | None], ...]

    @property
    def digest(self) -> bytes:
        """The digest that identifies the fingerprint set (duplicate detection)."""
        h = hashlib.sha256(b"blindmatch/v1/submission")
        for signal, value, _ in self.entries:
            h.update(signal.encode() + b"\0" + value)
        return h.digest()


def normalise(request: IntakeRequest, limits: Limits) -> Submission:
    """Check and normalise a submission.

    Raises:
        Unprocessable: a PDQ hash below quality 50 (``pdq_quality_too_low``), a video with
            no frame of sufficient quality, a digest of the wrong length for its signal
            (``invalid_hash``), too many fingerprints (``too_many_fingerprints``).
    """
    found: dict[tuple[str, bytes], int | None] = {}
    for item in request.fingerprints:
        if isinstance(item, PdqFingerprint):
            if item.quality < PdqSignal.quality_floor:
                raise Unprocessable(
                    f"a PDQ hash below quality {PdqSignal.quality_floor} is not accepted: "
                    "it matches unrelated images",
                    code="pdq_quality_too_low",
                )
            found.setdefault(("pdq", bytes.fromhex(item.hash)), item.quality)
        elif isinstance(item, ExactFingerprint):
            value = bytes.fromhex(item.hash)
            if len(value) != _EXACT_BYTES[item.signal]:
                raise Unprocessable(
                    f"a {item.signal} digest is {_EXACT_BYTES[item.signal]} bytes",
                    code="invalid_hash",
                )
            found.setdefault((item.signal, value), None)
        else:
            if len(item.frames) > limits.max_frames:
                raise Unprocessable("too many vPDQ frames", code="too_many_fingerprints")
            good = [f for f in item.frames if f.quality >= PdqSignal.quality_floor]
            if not good:
                raise Unprocessable(
                    f"no vPDQ frame reaches quality {PdqSignal.quality_floor}",
                    code="pdq_quality_too_low",
                )
            for frame in good:
                found.setdefault(("vpdq", bytes.fromhex(frame.hash)), frame.quality)
    if len(found) > limits.max_fingerprints + limits.max_frames:
        raise Unprocessable("too many fingerprints in one report", code="too_many_fingerprints")
    entries = tuple(sorted((s, v, q) for (s, v), q in found.items()))
    return Submission(request.content_kind, request.age_attestation, entries)


def ensure_salt(connection: Connection) -> None:
    """Create the deployment's rate-limit salt when missing (start-up; idempotent)."""
    exists = connection.execute(
        sa.select(service_state.c.name).where(service_state.c.name == _SALT)
    ).first()
    if exists is None:
        connection.execute(
            sa.insert(service_state).values(name=_SALT, value=secrets.token_bytes(32))
        )


def client_key(connection: Connection, address: str, at: int) -> bytes:
    """The keyed digest a client's intakes are counted under this hour."""
    salt = connection.execute(
        sa.select(service_state.c.value).where(service_state.c.name == _SALT)
    ).scalar_one()
    window = at // _HOUR
    return hashlib.sha256(salt + address.encode() + window.to_bytes(8, "big")).digest()


def check_rate(connection: Connection, address: str, limit: int) -> None:
    """Count one intake of ``address`` this hour, or refuse it.

    Raises:
        TooManyRequests: the client reached ``limit`` intakes this hour (``rate_limited``).
    """
    at = now()
    window = at // _HOUR
    key = client_key(connection, address, at)
    refused = TooManyRequests(
        "too many reports from this client: try again later",
        retry_after=_HOUR - at % _HOUR,
        code="rate_limited",
    )
    if limit <= 0:
        raise refused
    for _ in range(2):
        updated = connection.execute(
            sa.update(rate_limits)
            .where(
                rate_limits.c.client == key,
                rate_limits.c.window == window,
                rate_limits.c.count < limit,
            )
            .values(count=rate_limits.c.count + 1)
        )
        if updated.rowcount == 1:
            return
        exists = connection.execute(
            sa.select(rate_limits.c.count).where(
                rate_limits.c.client == key, rate_limits.c.window == window
            )
        ).first()
        if exists is not None:
            raise refused
        try:
            with connection.begin_nested():
                connection.execute(
                    sa.insert(rate_limits).values(client=key, window=window, count=1)
                )
            return
        except sa.exc.IntegrityError:
            continue
    raise refused


def store_report(
    connection: Connection,
    submission: Submission,
    *,
    source: str,
    receipt_hash: bytes | None,
    reference: str | None = None,
) -> str:
    """Insert one report and its fingerprints; return its report id.

    ``reference`` is an imported report's reference in the operator's list (bulk import).

    Raises:
        Conflict: a live report holds the same fingerprint set (``duplicate_submission``).
    """
    digest = submission.digest
    duplicate = connection.execute(
        sa.select(reports.c.id).where(reports.c.submission_digest == digest)
    ).first()
    if duplicate is not None:
        raise Conflict("this report was already submitted", code="duplicate_submission")
    report_id = tokens.new_public_id(12)
    try:
        with connection.begin_nested():
            pk = connection.execute(
                sa.insert(reports)
                .values(
                    report_id=report_id,
                    receipt_hash=receipt_hash,
                    source=source,
                    content_kind=submission.content_kind,
                    age_attestation=submission.age_attestation,
                    submission_digest=digest,
                    status="active",
                    created_at=now(),
                    withdrawn_at=None,
                    reference=reference,
                )
                .returning(reports.c.id)
            ).scalar_one()
    except sa.exc.IntegrityError:
        raise Conflict("this report was already submitted", code="duplicate_submission") from None
    connection.execute(
        sa.insert(fingerprints),
        [{"report": pk, "signal": s, "hash": v, "quality": q} for s, v, q in submission.entries],
    )
    return report_id


def submit(
    connection: Connection, submission: Submission, address: str, limits: Limits
) -> tuple[str, str]:
    """Rate-limit, store and audit one anonymous report; return ``(report_id, receipt)``.

    Raises:
        TooManyRequests: over the client's hourly limit.
        Conflict: a duplicate of a live report.
    """
    check_rate(connection, address, limits.intake_per_hour)
    receipt = tokens.new_secret()
    report_id = store_report(
        connection, submission, source="intake", receipt_hash=tokens.digest(receipt)
    )
    signals: dict[str, int] = {}
    for signal, _, _ in submission.entries:
        signals[signal] = signals.get(signal, 0) + 1
    audit.append(connection, "intake", {"report_id": report_id, "fingerprints": signals})
    return report_id, receipt


def _authorised(
    connection: Connection, report_id: str, receipt: str | None
) -> sa.Row[tuple[object, ...]]:
    row = connection.execute(
        sa.select(reports).where(reports.c.report_id == report_id[:64])
    ).first()
    stored = bytes(32) if row is None or row.receipt_hash is None else row.receipt_hash
    if receipt is None or not tokens.matches(receipt, stored) or row is None:
        raise Unauthorized("the report id or the receipt is wrong", code="invalid_receipt")
    return row


def status(connection: Connection, report_id: str, receipt: str | None) -> ReportStatus:
    """The status of a report, for the holder of its receipt.

    Raises:
        Unauthorized: unknown report or wrong receipt (``invalid_receipt``; which one is not
            said).
    """
    row = _authorised(connection, report_id, receipt)
    state = row.status
    if state == "active":
        latest = (
            sa.select(publications.c.id)
            .order_by(publications.c.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        published = connection.execute(
            sa.select(handles.c.handle)
            .where(handles.c.report == row.id, handles.c.publication == latest)
            .union_all(
                sa.select(shared_handles.c.handle).where(
                    shared_handles.c.report == row.id, shared_handles.c.publication == latest
                )
            )
            .limit(1)
        ).first()
        state = "published" if published is not None else "pending"
    return ReportStatus(
        report_id=row.report_id,
        status=state,
        created_at=row.created_at,
        withdrawn_at=row.withdrawn_at,
    )


def withdraw(connection: Connection, report_id: str, receipt: str | None) -> ReportStatus:
    """Withdraw a report: its handles are revoked in the next manifest, at once.

    Raises:
        Unauthorized: unknown report or wrong receipt.
        Conflict: already withdrawn (``already_withdrawn``).
    """
    row = _authorised(connection, report_id, receipt)
    at = now()
    updated = connection.execute(
        sa.update(reports)
        .where(reports.c.id == row.id, reports.c.status != "withdrawn")
        .values(status="withdrawn", withdrawn_at=at, submission_digest=None)
    )
    if updated.rowcount != 1:
        raise Conflict("the report is already withdrawn", code="already_withdrawn")
    audit.append(connection, "withdrawal", {"report_id": row.report_id})
    return ReportStatus(
        report_id=row.report_id, status="withdrawn", created_at=row.created_at, withdrawn_at=at
    )
