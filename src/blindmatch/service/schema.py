"""The database schema (SQLAlchemy 2 Core), one for SQLite and PostgreSQL.

Alembic migrations (``migrations/versions``) create exactly these tables; a test compares
a migrated database against this metadata. Times are integer Unix seconds (UTC), hashes
and keys raw bytes: both types mean the same on both databases. What each table may
hold is bounded by the privacy rules: receipts and API keys only as SHA-256 digests,
client addresses only as a keyed digest per hour window.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

__all__ = [
    "audit_head",
    "audit_log",
    "epochs",
    "feedback",
    "fingerprints",
    "handles",
    "match_batches",
    "match_sessions",
    "metadata",
    "platforms",
    "publication_deltas",
    "publication_files",
    "publications",
    "quota_usage",
    "rate_limits",
    "reports",
    "service_state",
    "shared_handles",
]

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

service_state = Table(
    "service_state",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", LargeBinary(64), nullable=False),
)
"""Deployment-wide values shared by every worker (the rate-limit salt)."""

epochs = Table(
    "epochs",
    metadata,
    Column("epoch", Integer, primary_key=True, autoincrement=False),
    Column("key_id", LargeBinary(8), nullable=False),
    Column("public_key", LargeBinary(32), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("retires_at", BigInteger, nullable=True),
)
"""Key epochs; the secret halves are files in the data directory, never rows."""

reports = Table(
    "reports",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("report_id", String(32), nullable=False, unique=True),
    Column("receipt_hash", LargeBinary(32), nullable=True),
    Column("source", String(16), nullable=False),
    Column("content_kind", String(16), nullable=False),
    Column("age_attestation", String(32), nullable=False),
    Column("submission_digest", LargeBinary(32), nullable=True, unique=True),
    Column("status", String(16), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("withdrawn_at", BigInteger, nullable=True),
    Column("reviewed_at", BigInteger, nullable=True),
    Column("reference", String(256), nullable=True, index=True),
)
"""One row per report. ``submission_digest`` (over the sorted fingerprints) refuses a
duplicate while the report is live; it is cleared on withdrawal. ``reference``: the
operator's own reference of an imported report (its list's id), never set by intake."""

fingerprints = Table(
    "fingerprints",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("report", Integer, ForeignKey("reports.id"), nullable=False, index=True),
    Column("signal", String(32), nullable=False),
    Column("hash", LargeBinary(64), nullable=False),
    Column("quality", Integer, nullable=True),
)

rate_limits = Table(
    "rate_limits",
    metadata,
    Column("client", LargeBinary(32), primary_key=True),
    Column("window", BigInteger, primary_key=True, autoincrement=False),
    Column("count", Integer, nullable=False),
)
"""Intakes per client and hour; ``client`` is a keyed digest of the address, not the address."""

platforms = Table(
    "platforms",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("public_id", String(32), nullable=False, unique=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("key_hash", LargeBinary(32), nullable=False),
    Column("daily_elements", BigInteger, nullable=False),
    Column("disabled", Boolean, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

quota_usage = Table(
    "quota_usage",
    metadata,
    Column("platform", Integer, ForeignKey("platforms.id"), primary_key=True),
    Column("day", Integer, primary_key=True, autoincrement=False),
    Column("used", BigInteger, nullable=False),
    Column("audited", Boolean, nullable=False),
)
"""Elements evaluated per platform and UTC day (days since the epoch); ``audited`` once
the closed day's count is in the audit log."""

match_sessions = Table(
    "match_sessions",
    metadata,
    Column("id", String(48), primary_key=True),
    Column("platform", Integer, ForeignKey("platforms.id"), nullable=False, index=True),
    Column("epoch", Integer, ForeignKey("epochs.epoch"), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("closed", Boolean, nullable=False),
)

match_batches = Table(
    "match_batches",
    metadata,
    Column("session", String(48), ForeignKey("match_sessions.id"), primary_key=True),
    Column("batch_id", BigInteger, primary_key=True, autoincrement=False),
    Column("elements", LargeBinary, nullable=True),
    Column("proved", Boolean, nullable=False),
)
"""Evaluated batches (the blinded elements only) kept until a proof request names them."""

publications = Table(
    "publications",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("epoch", Integer, ForeignKey("epochs.epoch"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("max_report", Integer, nullable=False),
    Column("active_reports", Integer, nullable=False),
    Column("covered_report", Integer, nullable=False),
    Column("covered_active", Integer, nullable=False),
    UniqueConstraint("epoch", "version"),
)
"""One full version per row. ``max_report``/``active_reports``: what its full indexes were
built from; ``covered_report``/``covered_active``: the same with its deltas (advanced by a
conditional update when a delta is published, which is how concurrent publishers agree)."""

publication_files = Table(
    "publication_files",
    metadata,
    Column("publication", Integer, ForeignKey("publications.id"), primary_key=True),
    Column("signal", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("sha256", LargeBinary(32), nullable=False),
    Column("index_digest", LargeBinary(32), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("entries", BigInteger, nullable=False),
    Column("references", Integer, nullable=False),
)

publication_deltas = Table(
    "publication_deltas",
    metadata,
    Column("publication", Integer, ForeignKey("publications.id"), primary_key=True),
    Column("signal", String(32), primary_key=True),
    Column("sequence", Integer, primary_key=True, autoincrement=False),
    Column("name", String(200), nullable=False),
    Column("sha256", LargeBinary(32), nullable=False),
    Column("index_digest", LargeBinary(32), nullable=False),
    Column("current_digest", LargeBinary(32), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("entries", BigInteger, nullable=False),
    Column("references", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)
"""Deltas of a full version, numbered 1, 2, ... per signal; ``current_digest`` names the
full index with deltas 1..sequence (what ``ServerInfo`` carries once it is the newest)."""

handles = Table(
    "handles",
    metadata,
    Column("publication", Integer, ForeignKey("publications.id"), primary_key=True),
    Column("handle", LargeBinary(16), primary_key=True),
    Column("report", Integer, ForeignKey("reports.id"), nullable=False),
    Index("ix_handles_report", "report"),
)
"""Which report each handle of a publication stands for (never published)."""

shared_handles = Table(
    "shared_handles",
    metadata,
    Column("publication", Integer, ForeignKey("publications.id"), primary_key=True),
    Column("handle", LargeBinary(16), primary_key=True),
    Column("report", Integer, ForeignKey("reports.id"), primary_key=True),
    Index("ix_shared_handles_report", "report"),
)
"""The further reports a handle of a compact exact index stands for: a hash reported
twice is one key of the filter and one handle (derived from its OPRF output), so
``handles`` names its first report and this table every other report of that hash (never
published). A handle is revoked only when none of its reports is active."""

feedback = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("report", Integer, ForeignKey("reports.id"), nullable=False, index=True),
    Column("platform", Integer, ForeignKey("platforms.id"), nullable=False),
    Column("verdict", String(24), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    UniqueConstraint("report", "platform"),
)
"""What each platform did with a report's matches (its latest verdict); disputes from
distinct platforms suspend the report pending review."""

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", BigInteger, nullable=False),
    Column("kind", String(32), nullable=False),
    Column("payload", Text, nullable=False),
    Column("prev_hash", LargeBinary(32), nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", LargeBinary(32), nullable=False),
)
"""One row: the last sequence number and hash (its lock serialises appends)."""
