"""The initial schema (docs/deployment.md lists the tables and what each may hold).

Revision ID: 0001
Revises: none
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_log")),
    )
    op.create_table(
        "epochs",
        sa.Column("epoch", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("key_id", sa.LargeBinary(length=8), nullable=False),
        sa.Column("public_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("retires_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("epoch", name=op.f("pk_epochs")),
    )
    op.create_table(
        "platforms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("public_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("key_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("daily_elements", sa.BigInteger(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platforms")),
        sa.UniqueConstraint("name", name=op.f("uq_platforms_name")),
        sa.UniqueConstraint("public_id", name=op.f("uq_platforms_public_id")),
    )
    op.create_table(
        "rate_limits",
        sa.Column("client", sa.LargeBinary(length=32), nullable=False),
        sa.Column("window", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("client", "window", name=op.f("pk_rate_limits")),
    )
    op.create_table(
        "reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report_id", sa.String(length=32), nullable=False),
        sa.Column("receipt_hash", sa.LargeBinary(length=32), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("content_kind", sa.String(length=16), nullable=False),
        sa.Column("age_attestation", sa.String(length=32), nullable=False),
        sa.Column("submission_digest", sa.LargeBinary(length=32), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("withdrawn_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
        sa.UniqueConstraint("report_id", name=op.f("uq_reports_report_id")),
        sa.UniqueConstraint("submission_digest", name=op.f("uq_reports_submission_digest")),
    )
    op.create_table(
        "service_state",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.LargeBinary(length=64), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_service_state")),
    )
    op.create_table(
        "fingerprints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("report", sa.Integer(), nullable=False),
        sa.Column("signal", sa.String(length=32), nullable=False),
        sa.Column("hash", sa.LargeBinary(length=64), nullable=False),
        sa.Column("quality", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["report"], ["reports.id"], name=op.f("fk_fingerprints_report_reports")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fingerprints")),
    )
    with op.batch_alter_table("fingerprints", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_fingerprints_report"), ["report"], unique=False)

    op.create_table(
        "match_sessions",
        sa.Column("id", sa.String(length=48), nullable=False),
        sa.Column("platform", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("closed", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["epoch"], ["epochs.epoch"], name=op.f("fk_match_sessions_epoch_epochs")
        ),
        sa.ForeignKeyConstraint(
            ["platform"], ["platforms.id"], name=op.f("fk_match_sessions_platform_platforms")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_match_sessions")),
    )
    with op.batch_alter_table("match_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_match_sessions_platform"), ["platform"], unique=False)

    op.create_table(
        "publications",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("max_report", sa.Integer(), nullable=False),
        sa.Column("active_reports", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["epoch"], ["epochs.epoch"], name=op.f("fk_publications_epoch_epochs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_publications")),
        sa.UniqueConstraint("epoch", "version", name=op.f("uq_publications_epoch")),
    )
    op.create_table(
        "quota_usage",
        sa.Column("platform", sa.Integer(), nullable=False),
        sa.Column("day", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("used", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["platform"], ["platforms.id"], name=op.f("fk_quota_usage_platform_platforms")
        ),
        sa.PrimaryKeyConstraint("platform", "day", name=op.f("pk_quota_usage")),
    )
    op.create_table(
        "handles",
        sa.Column("publication", sa.Integer(), nullable=False),
        sa.Column("handle", sa.LargeBinary(length=16), nullable=False),
        sa.Column("report", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["publication"], ["publications.id"], name=op.f("fk_handles_publication_publications")
        ),
        sa.ForeignKeyConstraint(["report"], ["reports.id"], name=op.f("fk_handles_report_reports")),
        sa.PrimaryKeyConstraint("publication", "handle", name=op.f("pk_handles")),
    )
    with op.batch_alter_table("handles", schema=None) as batch_op:
        batch_op.create_index("ix_handles_report", ["report"], unique=False)

    op.create_table(
        "match_batches",
        sa.Column("session", sa.String(length=48), nullable=False),
        sa.Column("batch_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("elements", sa.LargeBinary(), nullable=True),
        sa.Column("proved", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session"], ["match_sessions.id"], name=op.f("fk_match_batches_session_match_sessions")
        ),
        sa.PrimaryKeyConstraint("session", "batch_id", name=op.f("pk_match_batches")),
    )
    op.create_table(
        "publication_files",
        sa.Column("publication", sa.Integer(), nullable=False),
        sa.Column("signal", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("sha256", sa.LargeBinary(length=32), nullable=False),
        sa.Column("index_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.Column("references", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["publication"],
            ["publications.id"],
            name=op.f("fk_publication_files_publication_publications"),
        ),
        sa.PrimaryKeyConstraint("publication", "signal", name=op.f("pk_publication_files")),
    )


def downgrade() -> None:
    op.drop_table("publication_files")
    op.drop_table("match_batches")
    with op.batch_alter_table("handles", schema=None) as batch_op:
        batch_op.drop_index("ix_handles_report")

    op.drop_table("handles")
    op.drop_table("quota_usage")
    op.drop_table("publications")
    with op.batch_alter_table("match_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_match_sessions_platform"))

    op.drop_table("match_sessions")
    with op.batch_alter_table("fingerprints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_fingerprints_report"))

    op.drop_table("fingerprints")
    op.drop_table("service_state")
    op.drop_table("reports")
    op.drop_table("rate_limits")
    op.drop_table("platforms")
    op.drop_table("epochs")
    op.drop_table("audit_log")
    op.drop_table("audit_head")
