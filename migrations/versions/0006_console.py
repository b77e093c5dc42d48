"""console_controls, console_keys: the DJ console's live controls and the /v1 API keys (issue 12).

``console_controls`` holds every override, veto and pin asked for through the console, the
accepted and the refused (with the refusal's code), and who asked (the key's id, label and
role — never the key). The crowd step applies the accepted ones (``pipeline.live.controls``).
``console_keys`` holds the API keys as the SHA-256 of their secret only, with their role, the
event they are good for, their rate limit and a random salt for the scorer's pseudonyms.

Revision ID: 0006_console
Revises: 0005_live_windows
Create Date: 2026-12-03 14:50:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_console"
down_revision: str | Sequence[str] | None = "0005_live_windows"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the two console tables."""
    op.create_table(
        "console_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("label", sa.String(length=64), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("pseudonym_salt", sa.String(length=64), nullable=False),
        sa.Column("rate_per_second", sa.Float(), nullable=False),
        sa.Column("burst", sa.Integer(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_keys")),
        sa.UniqueConstraint("secret_sha256", name=op.f("uq_console_keys_secret_sha256")),
    )
    with op.batch_alter_table("console_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_console_keys_event_id"), ["event_id"], unique=False)
    op.create_table(
        "console_controls",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("track_id", sa.String(length=64), nullable=True),
        sa.Column("artist", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("by_label", sa.String(length=64), nullable=False),
        sa.Column("by_role", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"],
                                name=op.f("fk_console_controls_event_id_events")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_controls")),
    )
    with op.batch_alter_table("console_controls", schema=None) as batch_op:
        batch_op.create_index("ix_console_controls_event_id", ["event_id", "id"], unique=False)


def downgrade() -> None:
    """Drop the two console tables."""
    with op.batch_alter_table("console_controls", schema=None) as batch_op:
        batch_op.drop_index("ix_console_controls_event_id")
    op.drop_table("console_controls")
    with op.batch_alter_table("console_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_console_keys_event_id"))
    op.drop_table("console_keys")
