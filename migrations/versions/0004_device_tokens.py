"""device_tokens: the live gateway's wristband tokens, stored as SHA-256 of their secret only.

Revision ID: 0004_device_tokens
Revises: 0003_merkle_log
Create Date: 2026-12-03 11:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_device_tokens"
down_revision: str | Sequence[str] | None = "0003_merkle_log"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create device_tokens."""
    op.create_table(
        "device_tokens",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("subject_pseudonym", sa.String(length=64), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_tokens")),
        sa.UniqueConstraint("secret_sha256", name=op.f("uq_device_tokens_secret_sha256")),
    )
    with op.batch_alter_table("device_tokens", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_device_tokens_event_id"), ["event_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_device_tokens_subject_pseudonym"), ["subject_pseudonym"], unique=False
        )


def downgrade() -> None:
    """Drop device_tokens."""
    with op.batch_alter_table("device_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_tokens_subject_pseudonym"))
        batch_op.drop_index(batch_op.f("ix_device_tokens_event_id"))
    op.drop_table("device_tokens")
