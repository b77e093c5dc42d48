"""live_windows, live_crowd_windows, live_state: what the live workers commit (issue 11).

``live_windows`` is unique per (event, wristband, window): a redelivered JetStream message
commits nothing twice. ``live_crowd_windows`` is unique per (event, window): one worker takes
each crowd step. ``live_state`` carries the crowd step's state from window to window.

Revision ID: 0005_live_windows
Revises: 0004_device_tokens
Create Date: 2026-12-03 11:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_live_windows"
down_revision: str | Sequence[str] | None = "0004_device_tokens"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the three live tables."""
    op.create_table(
        "live_windows",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("subject_pseudonym", sa.String(length=64), nullable=False),
        sa.Column("window", sa.Integer(), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("frames_received", sa.Integer(), nullable=False),
        sa.Column("frames_stored", sa.Integer(), nullable=False),
        sa.Column("scored", sa.Boolean(), nullable=False),
        sa.Column("drops", sa.JSON(), nullable=False),
        sa.Column("raw_segment_id", sa.String(length=32), nullable=True),
        sa.Column("score_record_id", sa.String(length=32), nullable=True),
        sa.Column("committed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("worker", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"],
                                name=op.f("fk_live_windows_event_id_events")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_windows")),
    )
    with op.batch_alter_table("live_windows", schema=None) as batch_op:
        batch_op.create_index("ux_live_windows_key", ["event_id", "subject_pseudonym", "window"],
                              unique=True)
        batch_op.create_index("ix_live_windows_event_window", ["event_id", "window"],
                              unique=False)
    op.create_table(
        "live_crowd_windows",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("window", sa.Integer(), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("wristbands", sa.Integer(), nullable=False),
        sa.Column("crowd", sa.Float(), nullable=True),
        sa.Column("decision_id", sa.Integer(), nullable=True),
        sa.Column("committed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("worker", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"],
                                name=op.f("fk_live_crowd_windows_event_id_events")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_crowd_windows")),
    )
    with op.batch_alter_table("live_crowd_windows", schema=None) as batch_op:
        batch_op.create_index("ux_live_crowd_windows_key", ["event_id", "window"], unique=True)
    op.create_table(
        "live_state",
        sa.Column("event_id", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("crowd_window", sa.Integer(), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"],
                                name=op.f("fk_live_state_event_id_events")),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_live_state")),
    )


def downgrade() -> None:
    """Drop the three live tables."""
    op.drop_table("live_state")
    with op.batch_alter_table("live_crowd_windows", schema=None) as batch_op:
        batch_op.drop_index("ux_live_crowd_windows_key")
    op.drop_table("live_crowd_windows")
    with op.batch_alter_table("live_windows", schema=None) as batch_op:
        batch_op.drop_index("ix_live_windows_event_window")
        batch_op.drop_index("ux_live_windows_key")
    op.drop_table("live_windows")
