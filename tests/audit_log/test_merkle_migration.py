"""Migration 0003 builds the Merkle tree over the entries an old chain already holds."""

from __future__ import annotations

from sqlalchemy import text

from audit.log.merkle import MemoryTree
from audit.log.tree import StoredTree
from flowaudit.runtime import Runtime
from retention import db
from tests.audit_log.logbuild import fill_log

from .treeref import canonical_rows


def test_upgrade_builds_the_tree_of_an_existing_chain(runtime: Runtime) -> None:
    fill_log(runtime, entries=70, checkpoint_every=9)
    url = runtime.settings.db_url
    runtime.engine.dispose()
    with runtime.engine.begin() as conn:
        before = conn.execute(text("SELECT count(*) FROM audit_tree_nodes")).scalar_one()
        chain_checkpoints = conn.execute(
            text("SELECT count(*) FROM audit_checkpoints WHERE tree_size IS NULL")
        ).scalar_one()
    db.downgrade(url, "0002_purge_bytes_freed_bigint")
    db.upgrade(url)
    with runtime.engine.connect() as conn:
        data = canonical_rows(conn)
        after = conn.execute(text("SELECT count(*) FROM audit_tree_nodes")).scalar_one()
        left = conn.execute(text("SELECT count(*) FROM audit_checkpoints")).scalar_one()
        stored = StoredTree(conn, len(data))
        assert stored.root() == MemoryTree(data).root()
        reference = MemoryTree(data)
        for index in (0, 15, 16, len(data) - 1):
            assert stored.inclusion(index) == reference.inclusion_proof(index)
    assert len(data) >= 70
    assert after == before > 0  # the rebuilt tree has exactly the nodes the appends wrote
    assert left == chain_checkpoints  # Merkle checkpoints go with the downgrade, the rest stay
