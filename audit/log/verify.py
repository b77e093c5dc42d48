"""Verify the audit log: recompute every hash and link, check signed checkpoints and an anchor.

What is detected, and the sequence number named (the *first bad* one is the smallest):

* an **edited** entry (any field, its hash or its ``prev_hash``): that entry;
* a **deleted** entry: its sequence number (a gap, or the renumbered successor);
* an **inserted** entry (the ones after it renumbered): the inserted position;
* **reordered** entries: the first position that holds the wrong entry;
* an entry **rewritten and re-hashed**: that entry (its successor's link no longer matches);
* a **rewritten, re-hashed tail**: the first entry after the last intact signed checkpoint;
* a **truncated tail**: ``last seq + 1``, against a signed checkpoint or a kept anchor;
* an **unreadable** entry — a value of the wrong type in any column (bytes, a number or NULL
  in a text column, text that is not a time or not UTF-8): that entry, never a crash;
* an **unsigned tail** — entries after the last signed checkpoint, which a forged, correctly
  chained append cannot be told from: the first of them (only when signatures are checked,
  and unless the caller accepts an unsigned tail);
* a **Merkle checkpoint whose root is not the tree of the entries** it covers (signed over a
  different tree): that checkpoint, by id and size.

Alongside the chain, the verifier rebuilds the RFC 9162 Merkle tree of the entries in one pass
— its right edge only, O(log n) memory — and compares the root at every Merkle checkpoint;
chain-head checkpoints (before migration 0003) are checked against the chain head as before.

Entries are independently checkable — each stores ``prev_hash`` and its hash covers it — so the
verifier streams rows once (server-side cursor on PostgreSQL), builds the canonical bytes with
string formatting and hashes the stored details text as-is (see :mod:`audit.log.chain`). Type
checks cost almost nothing on that path: a wrong type makes the formatting raise, and only then
is the row examined column by column.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Generator, Iterator
from dataclasses import asdict, dataclass, field
from json.encoder import encode_basestring_ascii as _esc
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.engine import Engine

from audit.log.chain import _TEMPLATE, GENESIS_HASH
from audit.log.checkpoints import Anchor, verify_signature, verify_tree_signature
from audit.log.merkle import EMPTY_ROOT, fold
from audit.log.rows import stored_iso as _iso
from audit.log.signing import public_key_id
from audit.log.tree import STORED_LEVEL
from retention.db import map_db_errors
from retention.errors import StoreError

__all__ = ["Problem", "VerifyReport", "verify_log", "iter_chain_rows"]

MAX_PROBLEMS = 100

_SQL = {
    "sqlite": (
        "SELECT seq, at, actor, action, object_type, object_id, details, prev_hash, hash "
        "FROM audit_log ORDER BY seq, rowid"
    ),
    "postgresql": (
        "SELECT seq, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), actor, "
        "action, object_type, object_id, details::text, prev_hash, hash "
        "FROM audit_log ORDER BY seq"
    ),
}
_CHECKPOINT_SQL = {
    "sqlite": (
        "SELECT id, seq, head_hash, at, key_id, signature, tree_size, root_hash "
        "FROM audit_checkpoints ORDER BY seq, id"
    ),
    "postgresql": (
        "SELECT id, seq, head_hash, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US'), "
        "key_id, signature, tree_size, root_hash FROM audit_checkpoints ORDER BY seq, id"
    ),
}
_COLUMNS = (
    "seq",
    "at",
    "actor",
    "action",
    "object_type",
    "object_id",
    "details",
    "prev_hash",
    "hash",
)
_ENTRY_KINDS = frozenset({"edited", "unreadable", "missing", "moved", "rewritten", "truncated"})
# what a tampered value can make the hashing raise; such a row is then examined column by column
_UNREADABLE = (TypeError, ValueError, OverflowError)


@dataclass(frozen=True)
class Problem:
    """One verification failure, located at a sequence number."""

    seq: int  # 0: a checkpoint row that names no readable entry
    kind: str  # edited | unreadable | missing | moved | rewritten | truncated | checkpoint
    #            | anchor | unsigned (the tail after the last signed checkpoint) | tree (the
    #            stored Merkle nodes differ from the entries' tree)
    message: str


@dataclass
class VerifyReport:
    """The outcome of :func:`verify_log`. ``ok`` only if nothing at all failed."""

    entries: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS_HASH
    checkpoints: int = 0
    checkpoints_verified: int = 0
    tree_checkpoints: int = 0  # Merkle checkpoints whose root was compared with the tree
    tree_root: str = EMPTY_ROOT.hex()  # Merkle root of all the entries read
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
    def first_problem(self) -> Problem | None:
        """The earliest problem of the entries themselves, else the earliest at all.

        A cut log also leaves its last entries unsigned (their checkpoints went with the cut),
        but the cut is the news; a forged checkpoint over a forged tail is not, the tail is.
        """
        of_entries = [p for p in self.problems if p.kind in _ENTRY_KINDS]
        return min(of_entries or self.problems, key=lambda p: p.seq, default=None)

    @property
    def first_bad_seq(self) -> int | None:
        first = self.first_problem
        return None if first is None else first.seq

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


def _what(value: Any) -> str:
    """A value's kind for a message — never the value, which may be personal data."""
    if value is None:
        return "NULL"
    if isinstance(value, bytes | bytearray | memoryview):
        return "bytes"
    if isinstance(value, bool | int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeError:
            return "text that is not UTF-8"
        return "text"
    return type(value).__name__


def _readable_time(value: Any) -> bool:
    try:
        _iso(value)
    except _UNREADABLE:
        return False
    return True


def _unreadable_columns(row: tuple[Any, ...]) -> list[str]:
    """``column holds <kind>`` for every value of the wrong type in an ``audit_log`` row."""
    bad = []
    for name, value in zip(_COLUMNS, row, strict=True):
        if name == "seq":
            ok = type(value) is int
        elif name == "at":
            ok = _readable_time(value)
        else:
            ok = type(value) is str and _what(value) == "text"
        if not ok:
            kind = _what(value)
            if name == "at" and kind == "text":
                kind = "text that is not a time"
            bad.append(f"{name} holds {kind}")
    return bad


def _lenient_text(raw: bytes) -> str:
    """SQLite text that is not UTF-8 (an attacker's CAST) still becomes a row to judge."""
    return raw.decode("utf-8", "surrogateescape")


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def iter_chain_rows(engine: Engine, batch: int = 20000) -> Iterator[tuple[Any, ...]]:
    """Raw rows ``(seq, at, actor, action, object_type, object_id, details_text, prev, hash)``.

    Uses the driver's cursor directly (a named, server-side cursor on PostgreSQL): per-row
    overhead is most of the verifier's cost, and these columns need no type processing.
    """
    dialect = engine.dialect.name
    sql = _SQL.get(dialect)
    if sql is None:
        raise StoreError(f"audit verify supports SQLite and PostgreSQL, not {dialect}")
    yield from _raw_rows(engine, sql, batch, "flowaudit_audit_verify")


def _raw_rows(
    engine: Engine, sql: str, batch: int, cursor_name: str
) -> Generator[tuple[Any, ...], None, None]:
    """Rows of ``sql`` straight from the driver. SQLite text that is not UTF-8 makes the
    driver raise mid-scan; the scan then restarts decoding leniently and skips the rows
    already yielded, so a tampered value becomes a finding, not an aborted verification."""
    dialect = engine.dialect.name
    driver_error: type[BaseException] = getattr(engine.dialect.dbapi, "Error", Exception)
    done, lenient = 0, False
    with map_db_errors(), engine.connect() as conn:
        dbapi_conn: Any = conn.connection.dbapi_connection
        while True:
            skip = done
            try:
                if dialect == "postgresql":
                    cursor = dbapi_conn.cursor(name=cursor_name)
                    cursor.itersize = batch
                else:
                    if lenient:
                        dbapi_conn.text_factory = _lenient_text
                    cursor = dbapi_conn.cursor()
                try:
                    cursor.execute(sql)
                    while rows := cursor.fetchmany(batch):
                        if skip:
                            rows, skip = rows[skip:], max(0, skip - len(rows))
                        done += len(rows)
                        yield from rows
                finally:
                    cursor.close()
                    if lenient:
                        dbapi_conn.text_factory = str
                return
            except driver_error as exc:
                if dialect == "sqlite" and not lenient and "decode" in str(exc):
                    lenient = True  # the message quotes the bad text: never show it
                    continue
                raise StoreError(f"reading the audit log failed: {_first_line(exc)}") from exc


@dataclass
class _Signed:
    """A trusted statement about the head at ``seq`` (a verified checkpoint or the anchor)."""

    seq: int
    head_hash: str
    source: str
    root_hash: str | None = None  # a Merkle checkpoint's root
    kind: str = "checkpoint"  # the problem kind that names it: checkpoint | anchor


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

    def discard(self, seq: int, kind: str) -> None:
        """Withdraw a problem a later finding explains better."""
        if (seq, kind) not in self.seen:
            return
        self.seen.discard((seq, kind))
        self.report.problems_total -= 1
        self.report.problems = [p for p in self.report.problems if (p.seq, p.kind) != (seq, kind)]

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


def _checkpoint_problem(row: tuple[Any, ...]) -> str | None:
    """Why a raw checkpoint row cannot be checked, or None if every value has its type."""
    _, seq, head, at, key_id, signature, tree_size, root = row
    bad = []
    if type(seq) is not int or seq < 1:
        bad.append(f"seq holds {_what(seq) if type(seq) is not int else 'a number below 1'}")
    if type(head) is not str or len(head) != 64 or not _is_hex(head):
        bad.append("head_hash is not 64 hex digits")
    if not _readable_time(at):
        bad.append(f"at holds {'text that is not a time' if _what(at) == 'text' else _what(at)}")
    if not isinstance(signature, bytes | memoryview):
        bad.append(f"signature holds {_what(signature)}")
    if not isinstance(key_id, str):
        bad.append(f"key_id holds {_what(key_id)}")
    if (tree_size is None) != (root is None):
        bad.append("only one of tree_size and root_hash is set")
    elif tree_size is not None and (tree_size != seq or type(tree_size) is not int):
        bad.append("tree_size differs from seq")
    elif root is not None and (type(root) is not str or len(root) != 64 or not _is_hex(root)):
        bad.append("root_hash is not 64 hex digits")
    return "; ".join(bad) or None


def _is_hex(text: str) -> bool:
    try:
        bytes.fromhex(text)
    except ValueError:
        return False
    return True


def _load_signed(
    engine: Engine,
    public_key: Ed25519PublicKey | None,
    anchor: Anchor | None,
    report: VerifyReport,
    out: _Collector,
) -> dict[int, list[_Signed]]:
    signed: dict[int, list[_Signed]] = {}
    trusted_id = public_key_id(public_key) if public_key is not None else None
    rows = list(_raw_rows(engine, _CHECKPOINT_SQL[engine.dialect.name], 1000, "flowaudit_cp"))
    report.checkpoints = len(rows)
    for row in rows:
        cp_id, seq, head, at, key_id, signature, _, root = row
        label = f"checkpoint #{cp_id} (seq {seq if type(seq) is int else '?'})"
        unreadable = _checkpoint_problem(row)
        if unreadable is not None:  # tampered with: trusted for nothing, and reported
            where = seq if type(seq) is int and seq >= 0 else 0
            out.add(where, "checkpoint", f"{label} is unreadable: {unreadable}")
            continue
        if public_key is not None:
            if root is not None:
                good = verify_tree_signature(
                    public_key, seq, bytes.fromhex(root), _iso(at), bytes(signature)
                )
            else:
                good = verify_signature(public_key, seq, head, _iso(at), bytes(signature))
            if not good:
                other = "" if key_id == trusted_id else f" (it names key {key_id[:16]})"
                out.add(seq, "checkpoint", f"{label} has an invalid signature{other}")
                continue
            report.checkpoints_verified += 1
        signed.setdefault(seq, []).append(_Signed(seq, head, label, root))
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
                _Signed(
                    anchor.seq,
                    anchor.head_hash,
                    f"the anchor (seq {anchor.seq})",
                    anchor.root_hash,
                    "anchor",
                )
            )
    return signed


def verify_log(
    engine: Engine,
    public_key: Ed25519PublicKey | None,
    anchor: Anchor | None = None,
    *,
    allow_unsigned_tail: bool = False,
    batch: int = 20000,
    max_problems: int = MAX_PROBLEMS,
) -> VerifyReport:
    """Recompute the chain and check checkpoints (``public_key``) and the ``anchor``.

    With a public key, entries after the last verified checkpoint (or anchor) are an
    ``unsigned`` problem unless ``allow_unsigned_tail``: nothing proves flowaudit wrote them.
    Without one the chain is still recomputed but checkpoints are not authenticated
    (``signatures_checked`` is False) and the tail is not judged. Never raises on what the
    rows hold: a value of the wrong type is an ``unreadable`` problem at its entry.
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
    last_raw_at: Any = _NO_TIME
    at_q = ""
    last_intact_signed = 0  # highest signed seq whose head matched
    mismatched: list[tuple[_Signed, int]] = []
    gaps: list[tuple[int, int, Any]] = []  # (first missing seq, count, hash of the one before)
    numberless: list[tuple[Any, ...]] = []  # rows whose seq is not an integer
    entries = 0
    edge: list[bytes] = []  # the Merkle tree's right edge (one hash per set bit of `leaves`)
    leaves = 0
    unreadable_leaf = sha256(b"\x00(unreadable)").digest()
    stored = _StoredNodes(engine, batch)  # audit_tree_nodes, in the order appends close them
    stored_level = STORED_LEVEL
    for row in iter_chain_rows(engine, batch):
        seq, at, actor, action, otype, oid, details, prev, digest = row
        entries += 1
        if type(seq) is not int:
            numberless.append(row)  # placed once every numbered entry has been seen
            continue
        if seq < expected:  # only a table without its primary key allows this
            where = seq if seq >= 1 else expected
            out.add(where, "moved", f"a second entry numbered {seq} follows entry {expected - 1}")
            continue
        try:
            if at != last_raw_at:
                at_q, last_raw_at = esc(_iso(at)), at
            if type(details) is not str:
                raise TypeError("details")
            canonical = (
                template % (esc(action), esc(actor), at_q, details, esc(oid), esc(otype), seq)
            ).encode()
            consistent: bool | None = sha256(prev.encode() + canonical).hexdigest() == digest
            node = sha256(b"\x00" + canonical).digest()
        except (*_UNREADABLE, AttributeError):
            consistent = None
            node = unreadable_leaf  # keeps the positions; the entry is reported anyway
        n, level = leaves, 0  # append the leaf to the tree's right edge (RFC 9162 shape)
        while n & 1:
            node = sha256(b"\x01" + edge.pop() + node).digest()
            n >>= 1
            level += 1
            if level >= stored_level:
                stored.check(level, ((leaves + 1) >> level) - 1, node)
        edge.append(node)
        leaves += 1
        gap = seq != expected
        if gap:
            span = str(expected) if seq == expected + 1 else f"{expected}..{seq - 1}"
            out.add(expected, "missing", f"entries {span} are missing (deleted)")
            gaps.append((expected, seq - expected, last_hash))
        if consistent is None:
            columns = "; ".join(_unreadable_columns(row)) or "a value of the wrong type"
            out.add(seq, "unreadable", f"entry {seq} is unreadable: {columns}")
        elif not consistent:
            _diagnose(row, out)
        elif not gap and prev != last_hash:
            out.add(
                seq - 1,
                "rewritten",
                f"entry {seq - 1} was rewritten: entry {seq} links to a different hash",
            )
        if seq in signed:
            root = fold(edge).hex() if leaves == seq else ""
            for item in signed.pop(seq):
                if _holds(item, digest, root, out):
                    last_intact_signed = max(last_intact_signed, seq)
                    report.last_signed_seq = max(report.last_signed_seq, seq)
                    report.tree_checkpoints += item.root_hash is not None
                elif item.root_hash is None or item.head_hash != digest:
                    mismatched.append((item, last_intact_signed))
        expected, last_hash = seq + 1, digest
    for item, last_intact in mismatched:  # resolved once every entry has been seen
        _signed_mismatch(item, last_intact, out)
    report.entries = entries
    report.tree_root = fold(edge).hex()
    stored.finish(out)
    report.head_seq = expected - 1
    report.head_hash = last_hash if isinstance(last_hash, str) else "(unreadable)"
    _place_numberless(numberless, gaps, report.head_seq, out)
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
    if public_key is not None and not allow_unsigned_tail and report.unsigned_tail:
        first, last = report.last_signed_seq + 1, report.head_seq
        span = f"entry {first}" if first == last else f"entries {first}..{last}"
        after = (
            f"the last signed checkpoint (seq {report.last_signed_seq})"
            if report.last_signed_seq
            else "the start: no signed checkpoint covers any entry"
        )
        out.add(
            first,
            "unsigned",
            f"{span} come after {after}; nothing proves flowaudit wrote them (a forged, "
            "correctly chained append looks the same)",
        )
    report.elapsed_s = time.perf_counter() - started
    return report


_NO_TIME = object()  # no row read yet (``None`` is a value a tampered ``at`` can hold)

_NODE_SQL = "SELECT level, idx, hash FROM audit_tree_nodes ORDER BY ((idx + 1) << level), level"


class _StoredNodes:
    """Compares ``audit_tree_nodes`` with the tree the verifier rebuilds, in one stream.

    The stored nodes only serve proofs; a wrong, missing or extra one makes proofs fail but
    says nothing about the entries, so it is reported only when the entries are intact (a
    tampered entry already explains it), once, at the first node that differs.
    """

    def __init__(self, engine: Engine, batch: int) -> None:
        self.rows = _raw_rows(engine, _NODE_SQL, batch, "flowaudit_audit_nodes")
        self.first: str | None = None
        self.where = 0

    def check(self, level: int, index: int, digest: bytes) -> None:
        if self.first is not None:
            return
        row = next(self.rows, None)
        if row is None:
            self.first = f"the stored tree has no node at level {level}, index {index}"
        elif (row[0], row[1]) != (level, index):
            self.first = (
                f"the stored tree holds node (level {row[0]}, index {row[1]}) where "
                f"(level {level}, index {index}) belongs"
            )
        elif bytes(row[2]) != digest:
            self.first = f"the stored tree node at level {level}, index {index} is wrong"
        if self.first is not None:
            self.where = (index + 1) << level

    def finish(self, out: _Collector) -> None:
        # nodes beyond the entries read are never used by a proof of them (or were appended
        # while this ran): not judged
        self.rows.close()
        if self.first is None or any(p.kind in _ENTRY_KINDS for p in out.report.problems):
            return
        out.add(
            self.where,
            "tree",
            f"{self.first}: inclusion and consistency proofs over it would fail; rebuild it "
            "from the entries with `flowaudit audit rebuild-tree`",
        )


def _place_numberless(
    rows: list[tuple[Any, ...]],
    gaps: list[tuple[int, int, Any]],
    head_seq: int,
    out: _Collector,
) -> None:
    """Name the position of each entry whose seq is not an integer: the gap whose previous
    entry it links to, else the first unexplained gap, else the end of the log."""
    free = list(gaps)
    extra = 0
    for row in rows:
        match = next((g for g in free if g[2] == row[7]), None) or (free[0] if free else None)
        if match is not None:
            free.remove(match)
            where = match[0]
            if match[1] == 1:  # that entry is not missing: its number is unreadable
                out.discard(where, "missing")
        else:
            extra += 1
            where = head_seq + extra
        columns = "; ".join(_unreadable_columns(row))
        out.add(where, "unreadable", f"entry {where} is unreadable: {columns}")


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


def _holds(item: _Signed, digest: str, root: str, out: _Collector) -> bool:
    """Whether a signed statement about ``item.seq`` matches the log there.

    A chain-head checkpoint signs the head hash; a Merkle checkpoint signs the root (its row's
    head hash is unsigned bookkeeping: an edited one is reported, the entries still hold).
    """
    if item.root_hash is None:
        return item.head_hash == digest
    if item.root_hash == root:
        if item.head_hash != digest:
            out.add(
                item.seq,
                item.kind,
                f"{item.source}: its (unsigned) chain head hash was edited; the signed Merkle "
                "root matches the entries",
            )
        return True
    if item.head_hash == digest:  # the chain agrees, the tree does not: signed a wrong root
        out.add(
            item.seq,
            item.kind,
            f"{item.source}: its Merkle root is not the root of the tree of entries "
            f"1..{item.seq} (signed over a different tree)",
        )
    return False


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
