"""purge_runs.rows_deleted becomes 64-bit, like bytes_freed: no run's tally can overflow.

Revision ID: 0007_purge_rows_deleted_bigint
Revises: 0006_console
Create Date: 2026-12-03 18:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_purge_rows_deleted_bigint"
down_revision: str | Sequence[str] | None = "0006_console"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INT32_MAX = 2**31 - 1


def upgrade() -> None:
    """Widen purge_runs.rows_deleted to BIGINT."""
    with op.batch_alter_table("purge_runs", schema=None) as batch_op:
        batch_op.alter_column(
            "rows_deleted",
            existing_type=sa.Integer(),
            type_=sa.BigInteger(),
            existing_nullable=False,
        )


def downgrade() -> None:
    """Narrow it back to INTEGER, clamping larger tallies to 2^31-1 (the receipt keeps them)."""
    purge_runs = sa.table("purge_runs", sa.column("rows_deleted", sa.BigInteger()))
    op.execute(
        purge_runs.update()
        .where(purge_runs.c.rows_deleted > _INT32_MAX)
        .values(rows_deleted=_INT32_MAX)
    )
    with op.batch_alter_table("purge_runs", schema=None) as batch_op:
        batch_op.alter_column(
            "rows_deleted",
            existing_type=sa.BigInteger(),
            type_=sa.Integer(),
            existing_nullable=False,
        )
