"""The stored Merkle tree on SQLite and PostgreSQL: equal to an in-memory reference at every
size, across transactions, rollbacks and writers; tampering with it or with a signed root is
named by `audit verify`."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import text

from audit.log.chain import AuditLog
from audit.log.checkpoints import checkpoint_after_command, load_signer
from audit.log.merkle import MemoryTree
from audit.log.proofs import inclusion_bundle, latest_tree_checkpoint
from audit.log.tree import STORED_LEVEL, StoredTree
from audit.log.verify import verify_log
from flowaudit.config import Settings
from flowaudit.runtime import Runtime, open_runtime
from retention.errors import IntegrityError
from retention.ground.actions import Action

from .logbuild import START
from .treeref import canonical_rows


def _append(runtime: Runtime, count: int, tag: str = "x") -> None:
    """``count`` entries in one transaction."""
    at = START + timedelta(seconds=count)
    with runtime.store.transaction(at, actor="test") as tx:
        for i in range(count):
            tx.audit(Action.CAPTURE_DROP, "window", f"{tag}{i}", {"frames": i})


def _expected_nodes(size: int) -> int:
    level, total = STORED_LEVEL, 0
    while (1 << level) <= size:
        total += size >> level
        level += 1
    return total


@pytest.fixture
def rt(home: Settings) -> Iterator[Runtime]:
    runtime = open_runtime(home, START, environ={})
    yield runtime
    runtime.close()


def test_stored_tree_equals_the_reference_at_every_size(rt: Runtime) -> None:
    for count in (1, 2, 13, 16, 1, 30, 3, 17, 64, 5):  # transactions of uneven sizes
        _append(rt, count)
    with rt.engine.connect() as conn:
        data = canonical_rows(conn)
        reference = MemoryTree(data)
        nodes = conn.execute(text("SELECT count(*) FROM audit_tree_nodes")).scalar_one()
        assert nodes == _expected_nodes(len(data))  # only levels >= 4, each exactly once
        for size in range(1, len(data) + 1):
            assert StoredTree(conn, size).root() == reference.root(size), size
        size = len(data)
        stored = StoredTree(conn, size)
        for index in range(size):
            assert stored.inclusion(index) == reference.inclusion_proof(index), index
        for old in range(1, size + 1):
            assert stored.consistency(old) == reference.consistency_proof(old), old
        for size in (17, 31, 64, 100):
            smaller = StoredTree(conn, size)
            for index in (0, size // 2, size - 1):
                assert smaller.inclusion(index) == reference.inclusion_proof(index, size)


def test_a_rolled_back_transaction_leaves_no_trace_in_the_tree(rt: Runtime) -> None:
    _append(rt, 20)
    with pytest.raises(RuntimeError):
        with rt.store.transaction(START, actor="test") as tx:
            for i in range(40):
                tx.audit(Action.CAPTURE_DROP, "window", f"gone{i}", {})
            raise RuntimeError("abort")
    _append(rt, 25, "after")
    with rt.engine.connect() as conn:
        data = canonical_rows(conn)
        assert len(data) == 45 and StoredTree(conn, 45).root() == MemoryTree(data).root()
        assert conn.execute(text("SELECT count(*) FROM audit_tree_nodes")).scalar_one() == (
            _expected_nodes(45)
        )


def test_writers_taking_turns_keep_one_tree(rt: Runtime, home: Settings) -> None:
    """Two processes' logs (two AuditLog objects with their own cached edge) alternate."""
    other = open_runtime(home, START, environ={})
    try:
        assert other.audit is not rt.audit and isinstance(other.audit, AuditLog)
        for turn in range(6):
            _append(rt if turn % 2 else other, 7 + turn, f"t{turn}-")
    finally:
        other.close()
    with rt.engine.connect() as conn:
        data = canonical_rows(conn)
        assert StoredTree(conn, len(data)).root() == MemoryTree(data).root()
    assert verify_log(rt.engine, None).ok


def test_verify_recomputes_the_root_and_names_a_checkpoint_signed_over_another_tree(
    rt: Runtime,
) -> None:
    signer = load_signer(rt.settings.signing_key_file)
    assert signer is not None
    rt.audit.attach_signer(signer, 1000)
    _append(rt, 33)
    checkpoint_after_command(rt)
    report = verify_log(rt.engine, signer.public_key)
    with rt.engine.connect() as conn:
        root = MemoryTree(canonical_rows(conn)).root()
    assert report.ok and report.tree_root == root.hex() and report.tree_checkpoints == 1
    _append(rt, 2)
    wrong = bytes(32)
    with rt.store.transaction(START, actor="audit") as tx:  # a validly signed wrong root
        seq = 35
        head = tx.session.execute(text("SELECT hash FROM audit_log WHERE seq = 35")).scalar_one()
        forged = signer.checkpoint(seq, head, START, wrong)
        tx.session.add(forged)
        tx.session.flush()
        forged_id = forged.id
    report = verify_log(rt.engine, signer.public_key)
    assert not report.ok
    problem = next(p for p in report.problems if p.kind == "checkpoint")
    assert problem.seq == 35 and f"checkpoint #{forged_id}" in problem.message
    assert "Merkle root" in problem.message


def test_a_damaged_node_table_is_named_and_rebuilt(rt: Runtime) -> None:
    signer = load_signer(rt.settings.signing_key_file)
    assert signer is not None
    _append(rt, 50)
    checkpoint_after_command(rt)
    assert verify_log(rt.engine, signer.public_key).ok
    with rt.engine.begin() as conn:
        conn.execute(text("UPDATE audit_tree_nodes SET hash = :h WHERE level = 4 AND idx = 1"),
                     {"h": bytes(32)})
    report = verify_log(rt.engine, signer.public_key)
    assert [(p.seq, p.kind) for p in report.problems] == [(32, "tree")]
    assert "level 4, index 1" in report.problems[0].message
    with rt.engine.connect() as conn:
        latest = latest_tree_checkpoint(conn, signer.key_id)
        assert latest is not None
        with pytest.raises(IntegrityError, match="no valid proof for entry 2 "):
            inclusion_bundle(conn, 2, latest, signer.public_key)  # (4, 1) is its sibling
        inclusion_bundle(conn, 20, latest, signer.public_key)  # its path avoids the node
    with rt.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_tree_nodes WHERE level = 5"))
    assert [p.kind for p in verify_log(rt.engine, signer.public_key).problems] == ["tree"]
    from audit.log.chain import rebuild_stored_tree

    with rt.store.transaction(START, actor="audit") as tx:
        assert rebuild_stored_tree(tx.session) == 50
    assert verify_log(rt.engine, signer.public_key).ok
