"""The further reports a compact exact index's handle stands for (a hash reported twice).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "shared_handles",
        sa.Column("publication", sa.Integer(), nullable=False),
        sa.Column("handle", sa.LargeBinary(length=16), nullable=False),
        sa.Column("report", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["publication"],
            ["publications.id"],
            name=op.f("fk_shared_handles_publication_publications"),
        ),
        sa.ForeignKeyConstraint(
            ["report"], ["reports.id"], name=op.f("fk_shared_handles_report_reports")
        ),
        sa.PrimaryKeyConstraint("publication", "handle", "report", name=op.f("pk_shared_handles")),
    )
    with op.batch_alter_table("shared_handles", schema=None) as batch_op:
        batch_op.create_index("ix_shared_handles_report", ["report"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("shared_handles", schema=None) as batch_op:
        batch_op.drop_index("ix_shared_handles_report")
    op.drop_table("shared_handles")
