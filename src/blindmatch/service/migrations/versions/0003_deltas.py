"""Deltas of a full publication and what each version covers with them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "publication_deltas",
        sa.Column("publication", sa.Integer(), nullable=False),
        sa.Column("signal", sa.String(length=32), nullable=False),
        sa.Column("sequence", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("sha256", sa.LargeBinary(length=32), nullable=False),
        sa.Column("index_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("current_digest", sa.LargeBinary(length=32), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("entries", sa.BigInteger(), nullable=False),
        sa.Column("references", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["publication"],
            ["publications.id"],
            name=op.f("fk_publication_deltas_publication_publications"),
        ),
        sa.PrimaryKeyConstraint(
            "publication", "signal", "sequence", name=op.f("pk_publication_deltas")
        ),
    )
    with op.batch_alter_table("publications", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("covered_report", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("covered_active", sa.Integer(), nullable=False, server_default="0")
        )
    # A version published before deltas existed covers exactly what it was built from.
    publications = sa.table(
        "publications",
        sa.column("max_report", sa.Integer()),
        sa.column("active_reports", sa.Integer()),
        sa.column("covered_report", sa.Integer()),
        sa.column("covered_active", sa.Integer()),
    )
    op.execute(
        publications.update().values(
            covered_report=publications.c.max_report,
            covered_active=publications.c.active_reports,
        )
    )
    with op.batch_alter_table("publications", schema=None) as batch_op:
        batch_op.alter_column("covered_report", server_default=None)
        batch_op.alter_column("covered_active", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("publications", schema=None) as batch_op:
        batch_op.drop_column("covered_active")
        batch_op.drop_column("covered_report")
    op.drop_table("publication_deltas")
