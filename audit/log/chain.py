"""The hash-chained audit log: every entry's hash covers the one before it.

``hash = SHA-256(prev_hash ‖ canonical entry)``, with the genesis ``prev_hash`` all zeros. An
entry written through :meth:`AuditLog.record` lands in the caller's transaction, so data and its
entry commit together. Appends are serialised: PostgreSQL takes a transaction-level advisory
lock; SQLite transactions are single-writer (``BEGIN IMMEDIATE``).

The canonical entry is JSON with sorted keys and no spaces::

    {"action":…,"actor":…,"at":"<UTC ISO 8601>","details":<D>,"object_id":…,"object_type":…,"seq":N}

where ``<D>`` is ``json.dumps(details, sort_keys=True)`` (ASCII, default separators). Details are
stored key-sorted, so the text the database keeps *is* ``<D>``: the verifier hashes the stored
bytes without parsing them (:mod:`audit.log.verify`), which is what makes it fast, and any change to
those bytes — even a re-serialisation — breaks the chain.

Details carry pseudonyms, ids, counts and times only: never serials, PCM or free text.
Every ``checkpoint_every`` entries, if a signer is attached, a signed checkpoint over the new
head is written in the same transaction (:mod:`audit.log.checkpoints`).

The same canonical bytes are the leaves of an RFC 9162 Merkle tree (:mod:`audit.log.tree`):
each append also hashes its leaf into the tree's right edge (kept in memory between
transactions, checked against the head it was built for) and the complete subtrees of 16
leaves or more it closes go into ``audit_tree_nodes`` in the same flush as the entries.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from json.encoder import encode_basestring_ascii as _esc
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

from audit.log.merkle import Frontier
from audit.log.rows import ENTRY_TEMPLATE
from audit.log.tree import (
    NODE_INSERT_SQL,
    STORED_LEVEL,
    StoredTree,
    load_frontier,
    rebuild_nodes,
)
from retention.errors import InputError, StoreError
from retention.ground.actions import Action
from retention.models import AuditCheckpoint, AuditEntry

if TYPE_CHECKING:
    from audit.log.checkpoints import CheckpointSigner

__all__ = [
    "AuditLog",
    "GENESIS_HASH",
    "DEFAULT_CHECKPOINT_EVERY",
    "entry_hash",
    "canonical_entry",
    "canonical_details",
    "normalise_details",
    "iso_utc",
    "read_head",
    "iter_entries",
    "last_checkpoint",
    "flush_pending",
    "tree_root",
    "rebuild_stored_tree",
]

GENESIS_HASH = "0" * 64
DEFAULT_CHECKPOINT_EVERY = 1000
_PG_LOCK_ID = 0x466C6F77  # "Flow"
_TEMPLATE = ENTRY_TEMPLATE


_last_iso: tuple[datetime, str] | None = None  # entries of one transaction share their time


def iso_utc(at: datetime) -> str:
    """The one time format in the chain: aware UTC ISO 8601 (``…+00:00``)."""
    global _last_iso
    cached = _last_iso
    if cached is not None and cached[0] is at:
        return cached[1]
    if at.tzinfo is None:
        raise InputError(f"audit time {at.isoformat()} is naive; pass an aware UTC datetime")
    iso = at.astimezone(UTC).isoformat()
    _last_iso = (at, iso)
    return iso


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(type(value).__name__)


_encode = json.JSONEncoder(sort_keys=True, default=_json_default, allow_nan=False).encode


def canonical_details(details: dict[str, Any]) -> str:
    """``<D>``: the details as sorted-key ASCII JSON (times become ISO strings)."""
    try:
        return _encode(details)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"audit details must be JSON of ids, counts and times ({exc}); "
            "convert the value or leave it out"
        ) from None


def normalise_details(details: dict[str, Any] | None) -> dict[str, Any]:
    """A key-sorted plain-JSON copy: ``json.dumps`` of it equals :func:`canonical_details`."""
    value: dict[str, Any] = json.loads(canonical_details(details or {}))
    return value


def canonical_entry(
    seq: int,
    at: datetime | str,
    actor: str,
    action: str,
    object_type: str,
    object_id: str,
    details: dict[str, Any] | str,
) -> bytes:
    """The exact bytes hashed for one entry (``at`` may be given as its ISO string,
    ``details`` as its canonical text)."""
    iso = at if isinstance(at, str) else iso_utc(at)
    body = details if isinstance(details, str) else canonical_details(details)
    return (
        _TEMPLATE
        % (_esc(action), _esc(actor), _esc(iso), body, _esc(object_id), _esc(object_type), seq)
    ).encode("ascii")


def entry_hash(prev_hash: str, canonical: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + canonical).hexdigest()


_HEAD_KEY = "flowaudit.audit_head"


@event.listens_for(Session, "after_transaction_end")
def _forget_head(session: Session, transaction: Any) -> None:
    """The cached chain head (and unsent entries) belong to the transaction that made them."""
    if transaction.parent is None:
        session.info.pop(_HEAD_KEY, None)
        session.info.pop(_PENDING_KEY, None)
        session.info.pop(_TREE_KEY, None)
        session.info.pop(_NODES_KEY, None)


def read_head(session: Session) -> tuple[int, str]:
    """``(seq, hash)`` of the last entry, or ``(0, GENESIS_HASH)`` for an empty log."""
    last = session.execute(
        select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
    ).first()
    return (0, GENESIS_HASH) if last is None else (int(last[0]), str(last[1]))


class AuditLog:
    """Implements :class:`retention.recorder.Recorder` over the ``audit_log`` table.

    ``signer`` (optional) signs a checkpoint every ``checkpoint_every`` entries; wire it with
    :meth:`attach_signer` once the signing key is known.
    """

    def __init__(
        self,
        signer: CheckpointSigner | None = None,
        checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
    ) -> None:
        if checkpoint_every < 1:
            raise InputError(f"checkpoint_every = {checkpoint_every}; use a positive count")
        self.signer = signer
        self.checkpoint_every = checkpoint_every
        # entries recorded through this log since it last signed the head: a command that
        # wrote nothing must not sign a tail someone else appended (it may be forged)
        self.appended = 0
        # the tree's right edge after the last append through this log, and the chain head it
        # belongs to: reused by the next transaction only if the database's head is that one
        self._edge: Frontier | None = None

    def attach_signer(
        self, signer: CheckpointSigner | None, checkpoint_every: int | None = None
    ) -> None:
        """Sign a checkpoint every N entries from now on (``None`` detaches)."""
        self.signer = signer
        if checkpoint_every is not None:
            if checkpoint_every < 1:
                raise InputError(f"checkpoint_every = {checkpoint_every}; use a positive count")
            self.checkpoint_every = checkpoint_every

    def _lock_and_read_head(self, session: Session) -> tuple[int, str]:
        cached = session.info.get(_HEAD_KEY)
        if cached is not None:
            return cached
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_ID})
        seq, head = read_head(session)
        edge = self._edge
        if edge is None or edge.head != head or edge.size != seq:
            # another writer appended, a transaction rolled back, or a new process: O(log n)
            edge = load_frontier(session.connection(), seq)
            edge.head = head
        session.info[_TREE_KEY] = edge
        self._edge = edge
        return seq, head

    def record(
        self,
        session: Session,
        *,
        at: datetime,
        action: Action,
        object_type: str,
        object_id: str,
        details: dict[str, Any] | None = None,
        actor: str = "flowaudit",
    ) -> None:
        """Append one entry in ``session``'s transaction (inserted before it commits)."""
        seq, prev = self._lock_and_read_head(session)
        seq += 1
        action_name = str(action)  # the plain text, not the enum member, is stored and hashed
        body = canonical_details(details or {})
        canonical = canonical_entry(seq, at, actor, action_name, object_type, object_id, body)
        digest = entry_hash(prev, canonical)
        info = session.info
        pending = info.setdefault(_PENDING_KEY, [])
        pending.append((seq, at, actor, action_name, object_type, object_id, body, prev, digest))
        # the leaf joins the tree's right edge (Frontier.append, inlined: it runs per entry)
        frontier: Frontier = info[_TREE_KEY]
        node, n, level, hashes = _sha256(b"\x00" + canonical).digest(), seq - 1, 0, frontier.hashes
        while n & 1:
            node = _sha256(b"\x01" + hashes.pop() + node).digest()
            n >>= 1
            level += 1
            if level >= STORED_LEVEL:
                info.setdefault(_NODES_KEY, []).append((level, (seq >> level) - 1, node))
        hashes.append(node)
        frontier.size, frontier.head = seq, digest
        info[_HEAD_KEY] = (seq, digest)
        self.appended += 1
        if self.signer is not None and seq % self.checkpoint_every == 0:
            session.add(self.signer.checkpoint(seq, digest, at, frontier.root()))


# -- batched insert -------------------------------------------------------------------------------
# Entries are not ORM objects: building, tracking and flushing one mapped object per entry cost
# several times the hashing. They wait in ``session.info`` and go in as one executemany, before
# the transaction commits and before any other statement of the same session runs (so a query
# in the same transaction sees them). The details column receives the canonical text itself.
_PENDING_KEY = "flowaudit.audit_pending"
_NODES_KEY = "flowaudit.audit_tree_pending"  # (level, index, hash) of stored subtrees
_TREE_KEY = "flowaudit.audit_tree_edge"  # the transaction's Frontier
_sha256 = hashlib.sha256
_COLUMNS = "seq, at, actor, action, object_type, object_id, details, prev_hash, hash"
_INSERT_SQL = {
    "sqlite": f"INSERT INTO audit_log ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    "postgresql": (
        f"INSERT INTO audit_log ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s::json, %s, %s)"
    ),
}


def _sqlite_time(at: datetime) -> str:
    """How :class:`retention.models.UTCDateTime` stores a time in SQLite (naive UTC text)."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def flush_pending(session: Session) -> None:
    """Insert the entries recorded in ``session`` that are not in the database yet.

    One driver-level ``executemany`` with the values already in their stored form: the
    canonical details text goes in as-is, so the database keeps exactly the hashed bytes.
    """
    pending = session.info.pop(_PENDING_KEY, None)
    if not pending:
        return
    connection = session.connection()
    dialect = connection.dialect.name
    sql = _INSERT_SQL.get(dialect)
    if sql is None:
        raise StoreError(f"the audit log supports SQLite and PostgreSQL, not {dialect}")
    if dialect == "sqlite":
        stamps: dict[datetime, str] = {}
        pending = [
            (row[0], stamps.get(row[1]) or stamps.setdefault(row[1], _sqlite_time(row[1])))
            + row[2:]
            for row in pending
        ]
    else:
        pending = [(row[0], row[1].astimezone(UTC)) + row[2:] for row in pending]
    connection.exec_driver_sql(sql, pending)
    nodes = session.info.pop(_NODES_KEY, None)
    if nodes:
        connection.exec_driver_sql(NODE_INSERT_SQL[dialect], nodes)


@event.listens_for(Session, "before_commit")
def _flush_before_commit(session: Session) -> None:
    flush_pending(session)


@event.listens_for(Session, "do_orm_execute")
def _flush_before_statements(state: Any) -> None:
    if state.session.info.get(_PENDING_KEY):
        flush_pending(state.session)


@event.listens_for(Session, "after_rollback")
def _drop_pending(session: Session) -> None:
    session.info.pop(_PENDING_KEY, None)
    session.info.pop(_NODES_KEY, None)


def iter_entries(
    session: Session,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    action: str | None = None,  # an action name, or a prefix ending in *
    after_seq: int | None = None,
    limit: int | None = None,
    newest_first: bool = False,
    batch: int = 1000,
) -> Iterator[AuditEntry]:
    """Entries in sequence order, filtered. ``action`` ending in ``*`` matches a prefix."""
    query = select(AuditEntry)
    if since is not None:
        query = query.where(AuditEntry.at >= since)
    if until is not None:
        query = query.where(AuditEntry.at < until)
    if after_seq is not None:
        query = query.where(AuditEntry.seq > after_seq)
    if action:
        if action.endswith("*"):
            prefix = action[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(AuditEntry.action.like(prefix + "%", escape="\\"))
        else:
            query = query.where(AuditEntry.action == action)
    query = query.order_by(AuditEntry.seq.desc() if newest_first else AuditEntry.seq)
    if limit is not None:
        query = query.limit(limit)
    yield from session.scalars(query.execution_options(yield_per=batch))


def last_checkpoint(session: Session) -> AuditCheckpoint | None:
    """The checkpoint with the highest sequence number, if any."""
    return session.scalars(
        select(AuditCheckpoint).order_by(AuditCheckpoint.seq.desc(), AuditCheckpoint.id.desc())
    ).first()


def tree_root(session: Session, size: int) -> bytes:
    """The Merkle root of the first ``size`` entries, as ``session``'s transaction sees them:
    from the transaction's own tree edge when it is at that size, else from stored nodes."""
    flush_pending(session)
    edge = session.info.get(_TREE_KEY)
    if isinstance(edge, Frontier) and edge.size == size:
        return edge.root()
    return StoredTree(session.connection(), size).root()


def rebuild_stored_tree(session: Session) -> int:
    """Recompute ``audit_tree_nodes`` in ``session``'s transaction, appends locked out."""
    flush_pending(session)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LOCK_ID})
    return rebuild_nodes(session.connection())
