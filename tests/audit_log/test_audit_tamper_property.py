"""Property: any single edit, deletion, insertion, reorder or tail truncation of the audit log
is detected by `verify` at the right sequence number; an untouched log verifies."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.log.checkpoints import Anchor
from audit.log.verify import verify_log
from flowaudit.runtime import initialise_home, open_runtime
from retention.db import make_engine

from .logbuild import START, RawLog, export_anchor, fill_log, flip, forged, freeze, shift_at

Rows = list[dict[str, Any]]


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


def _verify(log: RawLog, base: BaseLog):
    engine = make_engine(log.url())
    try:
        return verify_log(engine, base.public_key, base.anchor)
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
    max_examples=150,
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
    assert not report.ok, label
    assert report.first_bad_seq == expected, (label, report.problems)
