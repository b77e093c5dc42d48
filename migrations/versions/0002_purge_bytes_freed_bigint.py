"""purge_runs.bytes_freed becomes 64-bit: a run that frees more than 2 GiB is recorded exactly.

Revision ID: 0002_purge_bytes_freed_bigint
Revises: 0001_initial
Create Date: 2026-12-02 10:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_purge_bytes_freed_bigint"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_INT32_MAX = 2**31 - 1


def upgrade() -> None:
    """Widen purge_runs.bytes_freed to BIGINT."""
    with op.batch_alter_table("purge_runs", schema=None) as batch_op:
        batch_op.alter_column(
            "bytes_freed",
            existing_type=sa.Integer(),
            type_=sa.BigInteger(),
            existing_nullable=False,
        )


def downgrade() -> None:
    """Narrow it back to INTEGER, clamping larger figures to 2^31-1 (the receipt keeps them)."""
    purge_runs = sa.table("purge_runs", sa.column("bytes_freed", sa.BigInteger()))
    op.execute(
        purge_runs.update()
        .where(purge_runs.c.bytes_freed > _INT32_MAX)
        .values(bytes_freed=_INT32_MAX)
    )
    with op.batch_alter_table("purge_runs", schema=None) as batch_op:
        batch_op.alter_column(
            "bytes_freed",
            existing_type=sa.BigInteger(),
            type_=sa.Integer(),
            existing_nullable=False,
        )
