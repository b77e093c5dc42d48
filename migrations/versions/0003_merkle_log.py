"""The audit log becomes an RFC 9162 Merkle tree over its entries (migration 0003).

New table ``audit_tree_nodes`` (the hashes of complete subtrees of 16 leaves or more) and new
checkpoint columns ``tree_size`` and ``root_hash`` (a C2SP tlog checkpoint of the tree). The
upgrade builds the tree over the entries already in the log — the old chain's entries become
its leaves, in order — so the first checkpoint signed afterwards covers them; the checkpoints
signed before keep verifying as chain-head checkpoints.

Revision ID: 0003_merkle_log
Revises: 0002_purge_bytes_freed_bigint
Create Date: 2026-12-03 11:15:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from audit.log.tree import rebuild_nodes

revision: str = "0003_merkle_log"
down_revision: str | Sequence[str] | None = "0002_purge_bytes_freed_bigint"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the node table, add the checkpoint columns, build the tree of existing entries."""
    op.create_table(
        "audit_tree_nodes",
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name=op.f("pk_audit_tree_nodes")),
    )
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tree_size", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("root_hash", sa.String(length=64), nullable=True))
    rebuild_nodes(op.get_bind())


def downgrade() -> None:
    """Drop the tree and the Merkle checkpoints (0002 cannot check a signature over a root;
    the chain-head checkpoints stay)."""
    checkpoints = sa.table("audit_checkpoints", sa.column("tree_size", sa.BigInteger()))
    op.execute(checkpoints.delete().where(checkpoints.c.tree_size.is_not(None)))
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.drop_column("root_hash")
        batch_op.drop_column("tree_size")
    op.drop_table("audit_tree_nodes")
