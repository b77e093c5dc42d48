"""Verify the audit log: recompute every hash and link, check signed checkpoints and an anchor.

What is detected, and the sequence number named (the *first bad* one is the smallest):

* an **edited** entry (any field, its hash or its ``prev_hash``): that entry;
* a **deleted** entry: its sequence number (a gap, or the renumbered successor);
* an **inserted** entry (the ones after it renumbered): the inserted position;
* **reordered** entries: the first position that holds the wrong entry;
* an entry **rewritten and re-hashed**: that entry (its successor's link no longer matches);
* a **rewritten, re-hashed tail**: the first entry after the last intact signed checkpoint;
* a **truncated tail**: ``last seq + 1``, against a signed checkpoint or a kept anchor.

Entries are independently checkable — each stores ``prev_hash`` and its hash covers it — so the
verifier streams rows once (server-side cursor on PostgreSQL), builds the canonical bytes with
string formatting and hashes the stored details text as-is (see :mod:`audit.log.chain`).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from json.encoder import encode_basestring_ascii as _esc
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.engine import Engine

from audit.log.chain import _TEMPLATE, GENESIS_HASH
from audit.log.checkpoints import Anchor, verify_signature
from audit.log.signing import public_key_id
from retention.db import map_db_errors
from retention.errors import StoreError
from retention.models import AuditCheckpoint

__all__ = ["Problem", "VerifyReport", "verify_log", "iter_chain_rows"]

MAX_PROBLEMS = 100

_SQL = {
    "sqlite": (
        "SELECT seq, at, actor, action, object_type, object_id, details, prev_hash, hash "
        "FROM audit_log ORDER BY seq"
    ),
    "postgresql": (
        "SELECT seq, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), actor, "
        "action, object_type, object_id, details::text, prev_hash, hash "
        "FROM audit_log ORDER BY seq"
    ),
}


@dataclass(frozen=True)
class Problem:
    """One verification failure, located at a sequence number."""

    seq: int
    kind: str  # edited | missing | moved | rewritten | truncated | checkpoint | anchor
    message: str


@dataclass
class VerifyReport:
    """The outcome of :func:`verify_log`. ``ok`` only if nothing at all failed."""

    entries: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS_HASH
    checkpoints: int = 0
    checkpoints_verified: int = 0
    last_signed_seq: int = 0
    key_id: str | None = None
    signatures_checked: bool = False
    anchor_seq: int | None = None
    problems: list[Problem] = field(default_factory=list)
    problems_total: int = 0
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.problems_total == 0

    @property
    def first_bad_seq(self) -> int | None:
        return min((p.seq for p in self.problems), default=None)

    @property
    def unsigned_tail(self) -> int:
        """Entries after the last verified checkpoint (a forged append there is undetectable)."""
        return max(0, self.head_seq - self.last_signed_seq)

    @property
    def rate(self) -> float:
        return self.entries / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["problems"] = [asdict(p) for p in sorted(self.problems, key=lambda p: p.seq)]
        data.update(
            ok=self.ok,
            first_bad_seq=self.first_bad_seq,
            unsigned_tail=self.unsigned_tail,
            entries_per_second=round(self.rate),
        )
        return data


def _iso(raw: Any) -> str:
    """The chain's ISO time from the value the database returns for ``at``."""
    if isinstance(raw, str):
        if len(raw) == 26 and raw[10] == " " and raw[19] == ".":
            frac = raw[20:]
            tail = "+00:00" if frac == "000000" else "." + frac + "+00:00"
            return raw[:10] + "T" + raw[11:19] + tail
        raw = datetime.fromisoformat(raw)
    if isinstance(raw, datetime):
        value = raw if raw.tzinfo is not None else raw.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()
    raise StoreError(f"audit_log.at holds an unreadable time ({type(raw).__name__})")


def iter_chain_rows(engine: Engine, batch: int = 20000) -> Iterator[tuple[Any, ...]]:
    """Raw rows ``(seq, at, actor, action, object_type, object_id, details_text, prev, hash)``.

    Uses the driver's cursor directly (a named, server-side cursor on PostgreSQL): per-row
    overhead is most of the verifier's cost, and these columns need no type processing.
    """
    dialect = engine.dialect.name
    sql = _SQL.get(dialect)
    if sql is None:
        raise StoreError(f"audit verify supports SQLite and PostgreSQL, not {dialect}")
    driver_error: type[BaseException] = getattr(engine.dialect.dbapi, "Error", Exception)
    with map_db_errors(), engine.connect() as conn:
        dbapi_conn: Any = conn.connection.dbapi_connection
        try:
            if dialect == "postgresql":
                cursor = dbapi_conn.cursor(name="flowaudit_audit_verify")
                cursor.itersize = batch
            else:
                cursor = dbapi_conn.cursor()
            try:
                cursor.execute(sql)
                while rows := cursor.fetchmany(batch):
                    yield from rows
            finally:
                cursor.close()
        except driver_error as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise StoreError(f"reading the audit log failed: {reason}") from exc


@dataclass
class _Signed:
    """A trusted statement about the head at ``seq`` (a verified checkpoint or the anchor)."""

    seq: int
    head_hash: str
    source: str


def _canonical(row: tuple[Any, ...], seq: int) -> bytes:
    _, at, actor, action, otype, oid, details, _, _ = row
    return (
        _TEMPLATE
        % (_esc(action), _esc(actor), _esc(_iso(at)), details, _esc(oid), _esc(otype), seq)
    ).encode()


def _self_consistent(row: tuple[Any, ...], seq: int) -> bool:
    digest = hashlib.sha256(str(row[7]).encode() + _canonical(row, seq)).hexdigest()
    return digest == row[8]


class _Collector:
    def __init__(self, report: VerifyReport, limit: int) -> None:
        self.report, self.limit = report, limit
        self.seen: set[tuple[int, str]] = set()

    def add(self, seq: int, kind: str, message: str) -> None:
        if (seq, kind) in self.seen:
            return
        self.seen.add((seq, kind))
        self.report.problems_total += 1
        if len(self.report.problems) < self.limit:
            self.report.problems.append(Problem(seq, kind, message))
        elif seq < max(p.seq for p in self.report.problems):  # keep the earliest ones
            worst = max(self.report.problems, key=lambda p: p.seq)
            self.report.problems.remove(worst)
            self.report.problems.append(Problem(seq, kind, message))


def _load_signed(
    engine: Engine,
    public_key: Ed25519PublicKey | None,
    anchor: Anchor | None,
    report: VerifyReport,
    out: _Collector,
) -> dict[int, list[_Signed]]:
    signed: dict[int, list[_Signed]] = {}
    trusted_id = public_key_id(public_key) if public_key is not None else None
    with map_db_errors(), engine.connect() as conn:
        rows = conn.execute(
            select(
                AuditCheckpoint.id,
                AuditCheckpoint.seq,
                AuditCheckpoint.head_hash,
                AuditCheckpoint.at,
                AuditCheckpoint.key_id,
                AuditCheckpoint.signature,
            ).order_by(AuditCheckpoint.seq, AuditCheckpoint.id)
        ).all()
    report.checkpoints = len(rows)
    for cp_id, seq, head, at, key_id, signature in rows:
        label = f"checkpoint #{cp_id} (seq {seq})"
        if public_key is not None:
            if not verify_signature(public_key, seq, head, at, bytes(signature)):
                other = "" if key_id == trusted_id else f" (it names key {key_id})"
                out.add(seq, "checkpoint", f"{label} has an invalid signature{other}")
                continue
            report.checkpoints_verified += 1
        signed.setdefault(seq, []).append(_Signed(seq, head, label))
    if anchor is not None:
        report.anchor_seq = anchor.seq
        if not anchor.verifies():
            out.add(anchor.seq, "anchor", f"the anchor (seq {anchor.seq}) has an invalid signature")
        elif public_key is not None and anchor.key_id != trusted_id:
            out.add(
                anchor.seq,
                "anchor",
                f"the anchor was signed by key {anchor.key_id}, not the log's key {trusted_id}",
            )
        else:
            signed.setdefault(anchor.seq, []).append(
                _Signed(anchor.seq, anchor.head_hash, f"the anchor (seq {anchor.seq})")
            )
    return signed


def verify_log(
    engine: Engine,
    public_key: Ed25519PublicKey | None,
    anchor: Anchor | None = None,
    *,
    batch: int = 20000,
    max_problems: int = MAX_PROBLEMS,
) -> VerifyReport:
    """Recompute the chain and check checkpoints (``public_key``) and the ``anchor``.

    Without a public key the chain is still recomputed but checkpoints are not authenticated
    (``signatures_checked`` is False).
    """
    started = time.perf_counter()
    report = VerifyReport(
        key_id=public_key_id(public_key) if public_key is not None else None,
        signatures_checked=public_key is not None,
    )
    out = _Collector(report, max_problems)
    signed = _load_signed(engine, public_key, anchor, report, out)
    sha256, esc, template = hashlib.sha256, _esc, _TEMPLATE
    expected, last_hash = 1, GENESIS_HASH
    last_raw_at: Any = None
    at_q = ""
    last_intact_signed = 0  # highest signed seq whose head matched
    mismatched: list[tuple[_Signed, int]] = []
    entries = 0
    for row in iter_chain_rows(engine, batch):
        seq, at, actor, action, otype, oid, details, prev, digest = row
        entries += 1
        if at != last_raw_at:
            last_raw_at, at_q = at, esc(_iso(at))
        canonical = template % (esc(action), esc(actor), at_q, details, esc(oid), esc(otype), seq)
        consistent = sha256((prev + canonical).encode()).hexdigest() == digest
        gap = seq != expected
        if gap:
            span = str(expected) if seq == expected + 1 else f"{expected}..{seq - 1}"
            out.add(expected, "missing", f"entries {span} are missing (deleted)")
        if not consistent:
            _diagnose(row, out)
        elif not gap and prev != last_hash:
            out.add(
                seq - 1,
                "rewritten",
                f"entry {seq - 1} was rewritten: entry {seq} links to a different hash",
            )
        if seq in signed:
            for item in signed.pop(seq):
                if item.head_hash == digest:
                    last_intact_signed = max(last_intact_signed, seq)
                    report.last_signed_seq = max(report.last_signed_seq, seq)
                    continue
                mismatched.append((item, last_intact_signed))
        expected, last_hash = seq + 1, digest
    for item, last_intact in mismatched:  # resolved once every entry has been seen
        _signed_mismatch(item, last_intact, out)
    report.entries = entries
    report.head_seq = expected - 1
    report.head_hash = last_hash
    for seq in sorted(signed):  # signed heads whose entry is gone
        for item in signed[seq]:
            if seq <= report.head_seq:
                out.add(seq, "missing", f"entry {seq}, covered by {item.source}, is missing")
                continue
            first = report.head_seq + 1
            span = f"entry {seq} was" if first == seq else f"entries {first}..{seq} were"
            out.add(
                first,
                "truncated",
                f"the log ends at seq {report.head_seq} but {item.source} covers seq {seq}: "
                f"{span} cut off",
            )
    report.elapsed_s = time.perf_counter() - started
    return report


def _diagnose(row: tuple[Any, ...], out: _Collector) -> None:
    """Name the right position for an entry whose hash does not match its content."""
    seq = int(row[0])
    if seq > 1 and _self_consistent(row, seq - 1):
        out.add(
            seq - 1,
            "moved",
            f"entry {seq} is the original entry {seq - 1} renumbered: an entry was inserted "
            f"or entries were reordered at {seq - 1}",
        )
    elif _self_consistent(row, seq + 1):
        out.add(
            seq,
            "moved",
            f"entry {seq} is the original entry {seq + 1} renumbered: an entry was deleted "
            f"or entries were reordered at {seq}",
        )
    else:
        out.add(seq, "edited", f"entry {seq} does not match its hash (edited or moved)")


def _signed_mismatch(item: _Signed, last_intact: int, out: _Collector) -> None:
    localized = [p for p in out.report.problems if last_intact < p.seq <= item.seq]
    if localized:
        out.add(item.seq, "checkpoint", f"entry {item.seq} differs from {item.source}")
        return
    start = last_intact + 1
    out.add(
        start,
        "rewritten",
        f"entries {start}..{item.seq} were rewritten and re-hashed: entry {item.seq} differs "
        f"from {item.source}",
    )
