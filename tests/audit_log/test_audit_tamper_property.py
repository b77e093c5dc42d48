"""Property: any single edit, deletion, insertion, reorder or tail truncation of the audit log
is detected by `verify` at the right sequence number; an untouched log verifies.

And the verifier never crashes on tampered data: a value of the wrong type in any column
(bytes, integers, NULL, very long strings, invalid JSON) is tampering of that entry, and
correctly hashed entries forged after the last signed checkpoint are an unsigned tail that
fails verification — on SQLite and on PostgreSQL, as far as its column types allow.

`-s` or the terminal summary shows the figures: trials, caught, no-ops, crashed.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.log.checkpoints import Anchor, CheckpointSigner
from audit.log.verify import iter_chain_rows, verify_log
from flowaudit.runtime import initialise_home, open_runtime
from retention.db import make_engine

from .conftest import TALLY
from .logbuild import (
    START,
    NotUtf8,
    PgLog,
    RawLog,
    export_anchor,
    fill_log,
    flip,
    forged,
    forged_tail,
    freeze,
    pg_iso,
    shift_at,
)

Rows = list[dict[str, Any]]
# 150 examples per property by default; FLOWAUDIT_TAMPER_EXAMPLES=3000 for a long local run
EXAMPLES = int(os.environ.get("FLOWAUDIT_TAMPER_EXAMPLES", "150"))
CLASSIC = "edit/delete/insert/reorder/truncate (SQLite)"
RENUMBER = "integer renumbering, table without its primary key (SQLite)"
TYPES = "type confusion (SQLite)"
FORGED = "forged appends (SQLite)"


@dataclass(frozen=True)
class BaseLog:
    db: Path
    public_key: Ed25519PublicKey
    anchor: Anchor
    size: int


@pytest.fixture(scope="module")
def base_log(tmp_path_factory: pytest.TempPathFactory) -> BaseLog:
    root = tmp_path_factory.mktemp("auditlog")
    settings_ = initialise_home(root / "home", environ={})
    runtime = open_runtime(settings_, START, environ={})
    signer = fill_log(runtime, entries=40, checkpoint_every=7)
    anchor = export_anchor(runtime, signer, root / "anchor.json", START + timedelta(hours=7))
    freeze(runtime)
    return BaseLog(root / "home" / "flowaudit.db", signer.public_key, anchor, anchor.seq)


def _verify(log: RawLog, base: BaseLog, *, anchor: bool = True, family: str = CLASSIC, **kw):
    engine = make_engine(log.url())
    try:
        return verify_log(engine, base.public_key, base.anchor if anchor else None, **kw)
    except Exception:
        TALLY.add(family, "crashed")
        raise
    finally:
        engine.dispose()


# -- tampering operations: each returns (rows, expected first bad seq, checkpoints cut) ---------
EDITS: dict[str, Callable[[dict[str, Any]], None]] = {
    "actor": lambda r: r.update(actor=r["actor"] + "x"),
    "action": lambda r: r.update(action=r["action"] + ".x"),
    "object_type": lambda r: r.update(object_type="x" + r["object_type"]),
    "object_id": lambda r: r.update(object_id=r["object_id"][:-1] + "Z"),
    "details": lambda r: r.update(details=json.dumps({**json.loads(r["details"]), "x": 1})),
    "details_whitespace": lambda r: r.update(details=" " + r["details"]),
    "at": lambda r: r.update(at=shift_at(r["at"])),
    "prev_hash": lambda r: r.update(prev_hash=flip(r["prev_hash"])),
    "hash": lambda r: r.update(hash=flip(r["hash"])),
}


def edit(rows: Rows, k: int, field: str) -> tuple[Rows, int, int | None]:
    EDITS[field](rows[k - 1])
    return rows, k, None


def delete(rows: Rows, k: int, renumber: bool) -> tuple[Rows, int, int | None]:
    del rows[k - 1]
    if renumber:
        for row in rows[k - 1 :]:
            row["seq"] -= 1
    return rows, k, None


def insert(rows: Rows, k: int, valid: bool) -> tuple[Rows, int, int | None]:
    prev = rows[k - 2]["hash"] if k > 1 else "0" * 64
    like = rows[min(k, len(rows)) - 1]
    for row in rows[k - 1 :]:
        row["seq"] += 1
    rows.insert(k - 1, forged(k, prev, like, valid))
    return rows, k, None


def reorder(rows: Rows, i: int, j: int) -> tuple[Rows, int, int | None]:
    a, b = rows[i - 1], rows[j - 1]
    for key in a:
        if key != "seq":
            a[key], b[key] = b[key], a[key]
    return rows, i, None


def truncate(rows: Rows, keep: int) -> tuple[Rows, int, int | None]:
    return rows[:keep], keep + 1, keep  # the attacker also removes checkpoints past the cut


@st.composite
def tampering(draw: st.DrawFn, size: int) -> tuple[str, Callable[[Rows], tuple]]:
    kind = draw(st.sampled_from(["edit", "delete", "insert", "reorder", "truncate"]))
    if kind == "edit":
        k, field = draw(st.integers(1, size)), draw(st.sampled_from(sorted(EDITS)))
        return f"edit {field} of {k}", lambda rows: edit(rows, k, field)
    if kind == "delete":  # deleting the last entry is a truncation
        k, renumber = draw(st.integers(1, size - 1)), draw(st.booleans())
        return f"delete {k} renumber={renumber}", lambda rows: delete(rows, k, renumber)
    if kind == "insert":  # at the very end only a wrong hash is detectable (see docs)
        k, valid = draw(st.integers(1, size + 1)), draw(st.booleans())
        valid = valid and k <= size
        return f"insert at {k} valid={valid}", lambda rows: insert(rows, k, valid)
    if kind == "reorder":
        i = draw(st.integers(1, size - 1))
        j = draw(st.integers(i + 1, size))
        return f"swap {i} and {j}", lambda rows: reorder(rows, i, j)
    keep = draw(st.integers(0, size - 1))
    return f"truncate to {keep}", lambda rows: truncate(rows, keep)


def test_an_untouched_log_verifies(base_log: BaseLog) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log = RawLog.copy_of(base_log.db, Path(tmp) / "copy.db")
        report = _verify(log, base_log)
    assert report.ok, report.problems
    assert report.entries == base_log.size
    assert report.checkpoints_verified == report.checkpoints >= base_log.size // 7
    assert report.unsigned_tail == 0


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_any_single_tampering_is_detected_at_its_sequence_number(
    base_log: BaseLog, data: st.DataObject
) -> None:
    label, operation = data.draw(tampering(base_log.size), label="tampering")
    with tempfile.TemporaryDirectory() as tmp:
        log = RawLog.copy_of(base_log.db, Path(tmp) / "copy.db")
        rows, expected, cut = operation(log.rows())
        log.replace(rows, drop_checkpoints_after=cut)
        report = _verify(log, base_log)
    caught = not report.ok and report.first_bad_seq == expected
    TALLY.add(CLASSIC, "caught" if caught else "missed")
    assert not report.ok, label
    assert report.first_bad_seq == expected, (label, report.problems)


# -- type confusion: a value of the wrong type in any column ---------------------------------------
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
_LONG = st.tuples(st.integers(1_000, 300_000), st.sampled_from(["x", "é", "\u2603", "0"])).map(
    lambda t: t[1] * t[0]
)
_GARBAGE = st.sampled_from(
    ["not-a-time", "", "{", '{"a":}', "null", "[]", "\x00", "2026-13-45 99:99:99.999999"]
)
_NOT_UTF8 = st.binary(max_size=20).map(lambda b: NotUtf8(b"\xff" + b))  # text, not UTF-8
_ANY = st.one_of(
    st.binary(max_size=80),
    _NOT_UTF8,
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False),
    st.none(),
    _TEXT,
    _LONG,
    _GARBAGE,
)
_NOT_INT = st.one_of(
    st.binary(max_size=16), _NOT_UTF8, st.none(), _TEXT, st.floats(allow_nan=False)
)


@st.composite
def confusion(draw: st.DrawFn, size: int) -> tuple[int, str, Any, bool]:
    """(entry, column, value, loose table). NULL and a non-integer seq need a loose table."""
    k = draw(st.integers(1, size))
    column = draw(
        st.sampled_from(
            [
                "seq",
                "at",
                "actor",
                "action",
                "object_type",
                "object_id",
                "details",
                "prev_hash",
                "hash",
            ]
        )
    )
    value = draw(_NOT_INT if column == "seq" else _ANY)
    loose = column == "seq" or value is None or draw(st.booleans())
    return k, column, value, loose


def _bad_types(values: tuple[tuple[type, Any], ...]) -> list[str]:
    expected = (int,) + (str,) * 8
    return [str(v[0].__name__) for v, t in zip(values, expected, strict=True) if v[0] is not t]


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_a_value_of_any_type_in_any_column_is_tampering_of_that_entry(
    base_log: BaseLog, data: st.DataObject
) -> None:
    k, column, value, loose = data.draw(confusion(base_log.size), label="tampering")
    with tempfile.TemporaryDirectory() as tmp:
        log = RawLog.copy_of(base_log.db, Path(tmp) / "copy.db")
        rows = log.rows()
        original = tuple((type(v), v) for v in rows[k - 1].values())
        rows[k - 1][column] = value
        log.replace(rows, loose=loose)
        stored = log.stored(k)  # what the database made of it (type affinity)
        report = _verify(log, base_log, family=TYPES)
    if stored == original:  # the database turned it back into the very same value
        TALLY.add(TYPES, "no-op")
        assert report.ok, report.problems
        return
    caught = not report.ok and report.first_bad_seq == k
    TALLY.add(TYPES, "caught" if caught else "missed")
    assert not report.ok, (column, _bad_types(stored))
    assert report.first_bad_seq == k, (column, _bad_types(stored), report.problems)


@settings(
    max_examples=max(20, EXAMPLES // 3),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_an_integer_renumbering_in_a_loose_table_never_crashes(
    base_log: BaseLog, data: st.DataObject
) -> None:
    """A duplicate, negative or far sequence number: detected, at or before the entry."""
    k = data.draw(st.integers(1, base_log.size), label="entry")
    value = data.draw(st.integers(-(2**63), 2**63 - 1), label="seq")
    with tempfile.TemporaryDirectory() as tmp:
        log = RawLog.copy_of(base_log.db, Path(tmp) / "copy.db")
        rows = log.rows()
        if value == k:
            value = k + 1000
        rows[k - 1]["seq"] = value
        log.replace(rows, loose=True)
        report = _verify(log, base_log, family=RENUMBER)
    caught = not report.ok and report.first_bad_seq is not None and report.first_bad_seq <= k
    TALLY.add(RENUMBER, "caught" if caught else "missed")
    assert not report.ok
    assert report.first_bad_seq is not None and report.first_bad_seq <= k, report.problems


# -- forged, correctly hashed appends after the last signed checkpoint ----------------------------
@settings(
    max_examples=max(30, EXAMPLES // 3),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    count=st.integers(1, 6),
    with_anchor=st.booleans(),
    forge_checkpoint=st.booleans(),
    drop_checkpoints=st.booleans(),
)
def test_forged_appends_after_the_last_signed_checkpoint_fail_verification(
    base_log: BaseLog,
    count: int,
    with_anchor: bool,
    forge_checkpoint: bool,
    drop_checkpoints: bool,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        log = RawLog.copy_of(base_log.db, Path(tmp) / "copy.db")
        rows = log.rows()
        tail = forged_tail(rows, count)
        log.replace(rows + tail)
        if drop_checkpoints:
            log.drop_checkpoints()
        if forge_checkpoint:  # signed with the attacker's own key
            mallory = CheckpointSigner(Ed25519PrivateKey.generate())
            head = tail[-1]
            signature = mallory.sign(head["seq"], head["hash"], "2026-06-22T00:00:00+00:00")
            log.add_checkpoint(
                head["seq"], head["hash"], "2026-06-22 00:00:00.000000", mallory.key_id, signature
            )
        report = _verify(log, base_log, anchor=with_anchor, family=FORGED)
        lenient = _verify(
            log, base_log, anchor=with_anchor, family=FORGED, allow_unsigned_tail=True
        )
    first_unsigned = base_log.size + 1 if with_anchor or not drop_checkpoints else 1
    caught = not report.ok and report.first_bad_seq == first_unsigned
    TALLY.add(FORGED, "caught" if caught else "missed")
    assert not report.ok
    assert report.unsigned_tail == base_log.size + count - first_unsigned + 1
    assert report.first_bad_seq == first_unsigned, report.problems
    assert {p.kind for p in report.problems} == (
        {"unsigned", "checkpoint"} if forge_checkpoint else {"unsigned"}
    )
    # accepting an unsigned tail explicitly: only a forged signature still fails
    assert lenient.ok is not forge_checkpoint
    assert lenient.unsigned_tail == report.unsigned_tail


# -- PostgreSQL: the same attacker, within what the column types accept ---------------------------
PG_TYPES = "type confusion (PostgreSQL)"
PG_FORGED = "forged appends (PostgreSQL)"
_PG_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
_PG_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "seq": st.one_of(st.none(), st.integers(1_000, 2**31 - 1)),
    "at": st.one_of(
        st.none(),
        st.sampled_from(["infinity", "-infinity", "0044-03-15 12:00:00+00 BC"]),
        st.integers(10_000, 294_276).map(lambda y: f"{y}-06-21 18:00:00+00"),  # past Python's
        st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
    ),
    "details": st.one_of(
        st.none(),
        st.sampled_from(["null", "5", '"x"', " {}", "[]", '{"b": 1, "a": 2}']),
        st.integers(1, 400).map(lambda d: "[" * d + "]" * d),
        st.integers(1_000, 300_000).map(lambda n: '"' + "x" * n + '"'),  # a very long string
    ),
    **{
        c: st.one_of(st.none(), _PG_TEXT.map(lambda t: t[:64]))
        for c in ("actor", "action", "object_type", "prev_hash", "hash")
    },
    "object_id": st.one_of(st.none(), _PG_TEXT.map(lambda t: t[:160])),
}


@dataclass(frozen=True)
class PgBase:
    log: PgLog
    rows: Rows
    public_key: Ed25519PublicKey
    anchor: Anchor


@pytest.fixture
def pg_base(pg_url: str, tmp_path: Path) -> Iterator[PgBase]:
    settings_ = initialise_home(tmp_path / "home", db_url=pg_url, environ={})
    runtime = open_runtime(settings_, START, environ={})
    try:
        signer = fill_log(runtime, entries=40, checkpoint_every=7)
        anchor = export_anchor(
            runtime, signer, tmp_path / "anchor.json", START + timedelta(hours=7)
        )
        log = PgLog(runtime.engine)
        log.loosen()  # the attacker drops the primary key and NOT NULL: the types stay
        yield PgBase(log, log.rows(), signer.public_key, anchor)
    finally:
        runtime.close()


@pytest.mark.postgres
@settings(
    max_examples=max(40, EXAMPLES // 2),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_postgres_any_typed_tampering_or_forged_append_is_named(
    pg_base: PgBase, data: st.DataObject
) -> None:
    log, size = pg_base.log, pg_base.anchor.seq
    log.restore(pg_base.rows)
    engine = log.engine
    if data.draw(st.booleans(), label="forged append"):
        count = data.draw(st.integers(1, 5), label="count")
        log.restore(pg_base.rows + forged_tail(pg_base.rows, count, iso=pg_iso))
        before, expected, family = None, size + 1, PG_FORGED
    else:
        k = data.draw(st.integers(1, size), label="entry")
        column = data.draw(st.sampled_from(sorted(_PG_VALUES)), label="column")
        value = data.draw(_PG_VALUES[column], label="value")
        before = list(iter_chain_rows(engine))
        log.set(k, column, value)
        expected, family = k, PG_TYPES
    try:
        report = verify_log(engine, pg_base.public_key, pg_base.anchor)
    except Exception:
        TALLY.add(family, "crashed")
        raise
    if before is not None and list(iter_chain_rows(engine)) == before:  # the same value again
        TALLY.add(family, "no-op")
        assert report.ok, report.problems
        return
    caught = not report.ok and report.first_bad_seq == expected
    TALLY.add(family, "caught" if caught else "missed")
    assert not report.ok
    assert report.first_bad_seq == expected, report.problems
