"""Mark the daily element counts already written into the audit log.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("quota_usage", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("audited", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    # Before this revision a day's count was audited when the platform's next day began:
    # a day with a later day of the same platform is in the log already.
    usage = sa.table(
        "quota_usage",
        sa.column("platform", sa.Integer()),
        sa.column("day", sa.Integer()),
        sa.column("audited", sa.Boolean()),
    )
    later = usage.alias("later")
    op.execute(
        usage.update()
        .where(sa.exists().where(later.c.platform == usage.c.platform, later.c.day > usage.c.day))
        .values(audited=True)
    )
    with op.batch_alter_table("quota_usage", schema=None) as batch_op:
        batch_op.alter_column("audited", server_default=None)


def downgrade() -> None:
    with op.batch_alter_table("quota_usage", schema=None) as batch_op:
        batch_op.drop_column("audited")
