"""Property of the restore merge: whatever the backup, the current store and the ledger hold,
a restore never brings back a key that was destroyed, and never loses a live key."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from retention.keybackup import merge_for_restore

IDS = st.sampled_from([f"b{i}" for i in range(8)])
KINDS = ("buckets", "subjects")
TOMB = {"buckets": "destroyed_buckets", "subjects": "destroyed_subjects"}


@st.composite
def stores(draw: st.DrawFn) -> dict[str, Any]:
    state: dict[str, Any] = {"ledger_seq": draw(st.integers(0, 50)), "pepper": "P"}
    for kind in KINDS:
        live = draw(st.sets(IDS))
        dead = draw(st.sets(IDS)) - live
        state[kind] = {i: f"key-{kind}-{i}" for i in live}
        state[TOMB[kind]] = {i: "2026-06-21T20:00:00+00:00" for i in dead}
    return state


@given(
    backup=stores(),
    current=st.none() | stores(),
    ledger=st.dictionaries(st.tuples(st.sampled_from(KINDS), IDS), st.integers(1, 99)),
)
def test_restore_never_resurrects_and_never_loses(
    backup: dict[str, Any], current: dict[str, Any] | None, ledger: dict[tuple[str, str], int]
) -> None:
    out, summary = merge_for_restore(backup, current, ledger)
    for kind in KINDS:
        dead = set(ledger_ids(ledger, kind)) | set(backup[TOMB[kind]])
        if current is not None:
            dead |= set(current[TOMB[kind]])
        assert dead.isdisjoint(out[kind])  # nothing destroyed anywhere comes back
        assert dead <= set(out[TOMB[kind]])  # and it stays recorded as destroyed
        live = set(backup[kind]) | (set(current[kind]) if current else set())
        assert live - dead <= set(out[kind])  # no live key is lost
        for ident in set(out[kind]):
            source = current[kind].get(ident) if current else None
            assert out[kind][ident] in (backup[kind].get(ident), source)  # keys are not altered
        gone_from_backup = {i for i in backup[kind] if i in dead}
        named = summary["bucket_ids"] if kind == "buckets" else summary["pseudonyms"]
        assert set(named) == gone_from_backup


def ledger_ids(ledger: dict[tuple[str, str], int], kind: str) -> list[str]:
    return [ident for (k, ident) in ledger if k == kind]
