"""Anonymisation of kept metadata: k >= k_min on the policy's quasi-identifiers, links dropped."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from audit.reid.risk import assess
from flowaudit.cli import app
from flowaudit.runtime import Runtime
from retention.anonymise import AGGREGATE_KIND, anonymise_due
from retention.anonymity import (
    aggregate_k_anonymous,
    choose_generalisation,
    k_anonymity,
    lenient_hierarchy,
    zone_area,
)
from retention.errors import NotFoundError
from retention.models import BUCKET_DELETED, Consent, Subject
from retention.policy import load_policy
from retention.purge import purge

from ._data import Seeded, audit_entries, bucket_states, seed_crowd

POLICY = load_policy("privacy-by-default")
QIS = list(POLICY.reid.quasi_identifiers)
K_MIN = int(POLICY.reid.k_min)


# -- an independent generaliser for the labels the policy uses (not retention's code) ---------


def _general(qi: str, value: object, label: str) -> str:
    if label == "*" or value is None:
        return "*"
    if qi == "zone":
        assert label == "area"
        return re.sub(r"\d+$", "", str(value))
    if qi == "age_band":
        width = int(label.removesuffix("y"))
        text = str(value)
        if text.endswith("+"):
            return f"{int(text[:-1]) // width * width}+"
        low, high = (int(x) for x in text.split("-"))
        return f"{low // width * width}-{(high // width + 1) * width - 1}"
    if qi == "arrival_bucket":
        at = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        if label == "1d":
            return f"{at:%Y-%m-%d}"
        assert label == "1h"
        return f"{at:%Y-%m-%dT%H}:00Z"
    raise AssertionError(f"unexpected level {label} for {qi}")


def _aggregates(runtime: Runtime, at: datetime) -> list:
    return [m for m in runtime.store.iter_metadata(now=at) if m.kind == AGGREGATE_KIND]


def test_kept_metadata_meets_k_min_and_no_link_survives(runtime: Runtime, now: datetime) -> None:
    seed = seed_crowd(
        runtime.store,
        now,
        event_id="anon",
        policy="privacy-by-default",
        subjects=36,
        hours=3,
        raw_per_hour=1,
        meta_per_hour=2,
        seed=41,
    )
    # one wristband nobody resembles: it must be merged away or suppressed
    with runtime.store.transaction(now, actor="test") as tx:
        odd = tx.register_subject(
            "WB-ODD",
            zone="Z9",
            age_band="85+",
            ticket_type="press",
            device_model="proto",
            arrival_at=now + timedelta(minutes=5),
        )
        tx.put_metadata(
            event_id="anon",
            pseudonym=odd,
            kind="window_score",
            start_at=now + timedelta(minutes=10),
            payload={"score": 99.5, "note": "odd one"},
            retention=timedelta(days=30),
        )
    at = now + timedelta(hours=73, minutes=30)  # hours 0 and 1 are due, hour 2 is not
    report = purge(runtime.store, now=at)
    anon = report.anonymised
    assert anon is not None
    due = ["anon:metadata:20260621T20", "anon:metadata:20260621T21"]
    assert anon.buckets == due
    states = bucket_states(runtime.store)
    assert all(states[b] == BUCKET_DELETED for b in due)
    assert states["anon:metadata:20260621T22"] == "ACTIVE"
    originals = dict(seed.metadata)
    for mid, (_payload, _, _pseud, kind) in originals.items():
        if kind == "crowd_score":
            continue
        try:
            record = runtime.store.get_metadata(mid, now=at)
        except NotFoundError:
            continue  # anonymised: the linked original is gone
        assert record.start_at >= now + timedelta(hours=2)  # only the hour not yet due

    aggregates = _aggregates(runtime, at)
    assert aggregates and all(a.pseudonym is None and a.anonymised for a in aggregates)
    # independent recount from what the test stored: who had records in that kind and hour
    present: dict[tuple[str, str], set[str]] = defaultdict(set)
    attrs = dict(seed.attributes)
    attrs[odd] = {
        "zone": "Z9",
        "age_band": "85+",
        "ticket_type": "press",
        "device_model": "proto",
        "arrival_at": now + timedelta(minutes=5),
    }
    for mid, (_p, _e, pseud, kind) in originals.items():
        if pseud is None:
            continue
        hour_key = _hour_of(seed, mid)
        present[(kind, hour_key)].add(pseud)
    present[("window_score", "2026-06-21T20:00:00+00:00")].add(odd)
    rows = []
    covered: dict[tuple[str, str], int] = defaultdict(int)
    for agg in aggregates:
        p = agg.payload
        assert p["subjects"] >= K_MIN and p["k_min"] == K_MIN
        assert "note" not in json.dumps(p) and "private remark" not in json.dumps(p)
        key = (p["source_kind"], p["window_start"])
        members = [
            s
            for s in present[key]
            if all(_general(q, _qi(attrs[s], q), p["generalisation"][q]) == p["qi"][q] for q in QIS)
        ]
        assert len(members) == p["subjects"]
        covered[key] += len(members)
        rows += [{**p["qi"], "wristband": s} for s in members]
    # every wristband of a due hour is in one aggregate, or counted as suppressed
    suppressed = sum(
        e.details["subjects_suppressed"] for e in audit_entries(runtime.store, "metadata.anonymise")
    )
    assert sum(len(present[k]) for k in covered) == sum(covered.values()) + suppressed
    assert suppressed <= 1  # at most the odd one
    table = pd.DataFrame(rows)
    assert k_anonymity(table, QIS, subject="wristband") >= K_MIN
    assert assess(table, QIS).k >= K_MIN  # the audit module's figure on the same table
    # crowd-level records survive unchanged, without a link
    crowd = [m for m in runtime.store.iter_metadata(now=at) if m.kind == "crowd_score"]
    assert sorted(json.dumps(m.payload, sort_keys=True) for m in crowd) == sorted(
        json.dumps(p, sort_keys=True) for p, _, who, k in originals.values() if k == "crowd_score"
    )
    # the audit trail: one entry per bucket, counts only
    entries = audit_entries(runtime.store, "metadata.anonymise")
    assert [e.object_id for e in entries] == due
    for entry in entries:
        text = json.dumps(entry.details)
        assert all(p not in text for p in attrs) and "WB-" not in text
        assert entry.details["k_min"] == K_MIN
        assert entry.details["min_group_subjects"] >= K_MIN
        assert entry.details["fields_dropped"] == ["note"]


def _qi(attrs: dict, qi: str) -> object:
    return attrs["arrival_at"] if qi == "arrival_bucket" else attrs.get(qi)


def _hour_of(seed: Seeded, mid: str) -> str:
    _payload, expires, _pseud, _kind = seed.metadata[mid]
    assert expires is not None
    start = expires - timedelta(days=30)
    return start.replace(minute=0, second=0, microsecond=0).astimezone(UTC).isoformat()


def test_a_crowd_smaller_than_k_is_suppressed_entirely(runtime: Runtime, now: datetime) -> None:
    seed_crowd(
        runtime.store,
        now,
        event_id="tiny",
        policy="privacy-by-default",
        subjects=K_MIN - 1,
        hours=1,
        raw_per_hour=0,
        meta_per_hour=1,
        seed=42,
    )
    at = now + timedelta(hours=73)
    report = anonymise_due(runtime.store, now=at)
    assert report.aggregates_written == 0
    assert report.records_suppressed == report.linkable_records == K_MIN - 1
    assert report.records_copied == 1  # the crowd score
    assert [m.kind for m in runtime.store.iter_metadata(now=at)] == ["crowd_score"]


def test_dry_run_counts_and_a_second_pass_does_nothing(runtime: Runtime, now: datetime) -> None:
    seed_crowd(
        runtime.store,
        now,
        event_id="twice",
        policy="privacy-by-default",
        subjects=12,
        hours=2,
        raw_per_hour=0,
        meta_per_hour=1,
        seed=43,
    )
    at = now + timedelta(hours=74)
    plan = anonymise_due(runtime.store, now=at, dry_run=True)
    assert plan.buckets == ["twice:metadata:20260621T20", "twice:metadata:20260621T21"]
    assert plan.linkable_records == 24
    assert not audit_entries(runtime.store, "metadata.anonymise")
    first = anonymise_due(runtime.store, now=at)
    second = anonymise_due(runtime.store, now=at)
    assert first.buckets == plan.buckets and second.buckets == []
    assert len(_aggregates(runtime, at)) == first.aggregates_written


def test_nothing_is_anonymised_early_or_under_a_policy_that_never_does(
    runtime: Runtime, now: datetime
) -> None:
    seed_crowd(
        runtime.store,
        now,
        event_id="early",
        policy="privacy-by-default",
        subjects=12,
        hours=1,
        raw_per_hour=0,
        meta_per_hour=1,
        seed=44,
    )
    seed_crowd(
        runtime.store,
        now,
        event_id="never",
        policy="spotify-2026",
        subjects=12,
        hours=1,
        raw_per_hour=0,
        meta_per_hour=1,
        meta_retention=None,
        seed=45,
    )
    assert anonymise_due(runtime.store, now=now + timedelta(hours=71, minutes=59)).buckets == []
    later = anonymise_due(runtime.store, now=now + timedelta(hours=73))
    assert later.buckets == ["early:metadata:20260621T20"]  # not the spotify event's


def test_wristbands_lose_their_quasi_identifiers_once_nothing_links_to_them(
    runtime: Runtime, now: datetime
) -> None:
    seed = seed_crowd(
        runtime.store,
        now,
        event_id="qi",
        policy="privacy-by-default",
        subjects=12,
        hours=1,
        raw_per_hour=1,
        meta_per_hour=1,
        raw_retention=timedelta(hours=1),
        seed=46,
    )
    seed_crowd(
        runtime.store,
        now,
        event_id="qi-live",
        policy="privacy-by-default",
        subjects=2,
        hours=1,
        raw_per_hour=1,
        meta_per_hour=0,
        raw_retention=None,
        seed=47,
        serial_prefix="KEEP",
    )
    early = purge(runtime.store, now=now + timedelta(hours=73))  # anonymised and deleted ...
    assert early.anonymised is not None and early.anonymised.subjects_coarsened == 0
    # ... but the event (ends +6 h) is not 72 h over yet; at +79 h it is, in that same run
    late = purge(runtime.store, now=now + timedelta(hours=79))
    assert late.anonymised is not None and late.anonymised.subjects_coarsened == 12
    again = purge(runtime.store, now=now + timedelta(hours=80))
    assert again.anonymised is not None and again.anonymised.subjects_coarsened == 0
    with runtime.store.session() as session:
        subjects = {s.pseudonym: s for s in session.scalars(select(Subject))}
        consents = session.scalars(select(Consent)).all()
    for pseud in seed.attributes:
        s = subjects[pseud]
        assert (s.zone, s.age_band, s.ticket_type, s.device_model, s.arrival_at) == (None,) * 5
    kept = [s for p, s in subjects.items() if p not in seed.attributes]
    assert len(kept) == 2 and all(s.zone is not None for s in kept)  # still linked to live raw
    assert len(consents) == 14  # consent records stay (Art 7(1))
    assert len(audit_entries(runtime.store, "subject.coarsen")) == 1


# -- the pure parts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "zone, area",
    [("A1", "A"), ("A-12", "A"), ("stage/front", "stage"), ("bar", "bar"), ("north 3", "north")],
)
def test_zone_area(zone: str, area: str) -> None:
    assert zone_area(zone) == area


@pytest.mark.parametrize(
    "spec, value, level, expected",
    [
        (["10y", "20y", "*"], "25-34", 1, "20-39"),
        (["10y", "20y", "*"], "25-34", 2, "20-39"),
        (["10y", "20y", "*"], "18-24", 2, "0-39"),
        (["10y", "20y", "*"], "55+", 1, "50+"),
        (["10y", "20y", "*"], "55+", 3, "*"),
        (["10y"], "not an age", 1, "*"),  # unreadable: suppressed, never kept
        (
            ["15m", "1h", "1d", "*"],
            datetime(2026, 6, 21, 20, 47, tzinfo=UTC),
            2,
            "2026-06-21T20:00Z",
        ),
        (["15m", "1h", "1d", "*"], datetime(2026, 6, 21, 20, 47, tzinfo=UTC), 3, "2026-06-21"),
        (["area", "*"], "B2", 1, "B"),
        (["bogus-level"], "x", 1, "*"),
    ],
)
def test_generalisation_levels(spec: list, value: object, level: int, expected: str) -> None:
    assert lenient_hierarchy("q", spec, is_time=False).generalise_value(value, level) == expected


def test_the_least_generalisation_that_reaches_k_is_chosen() -> None:
    frame = pd.DataFrame(
        {
            "pseudonym": [f"p{i}" for i in range(8)],
            "kind": ["s"] * 8,
            "zone": ["A1"] * 4 + ["A2"] * 4,
            "age_band": ["25-34"] * 8,
            "v:score": [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0],
        }
    )
    hierarchies = {"zone": ["area", "*"], "age_band": ["10y", "20y", "*"]}
    choice = choose_generalisation(
        frame, ["zone", "age_band"], hierarchies, k_min=5, max_suppression=0.0
    )
    assert choice.labels == {"zone": "area", "age_band": "10y"}  # the minimum already merges
    groups, _ = aggregate_k_anonymous(frame, ["zone", "age_band"], hierarchies, k_min=5)
    assert groups == [
        {
            "kind": "s",
            "qi": {"zone": "A", "age_band": "20-39"},
            "subjects": 8,
            "records": 8,
            "mean": {"score": 45.0},
            "sensitive": {},
        }
    ]
    strict = choose_generalisation(
        frame, ["zone", "age_band"], hierarchies, k_min=9, max_suppression=0.0
    )
    assert strict.suppressed_subjects == 8  # nothing reaches 9: everything suppressed
    assert strict.labels == {"zone": "*", "age_band": "*"}


def test_cli_anonymise_dry_run_and_json(sqlite_runtime: Runtime, now: datetime) -> None:
    seed_crowd(
        sqlite_runtime.store,
        now,
        event_id="cli-anon",
        policy="privacy-by-default",
        subjects=10,
        hours=1,
        raw_per_hour=0,
        meta_per_hour=1,
        seed=48,
    )
    home = str(sqlite_runtime.settings.home)
    at = (now + timedelta(hours=73)).isoformat()
    dry = CliRunner().invoke(app, ["anonymise", "--dry-run", "--home", home, "--now", at])
    assert dry.exit_code == 0 and "would anonymise" in dry.output and "10 linkable" in dry.output
    real = CliRunner().invoke(app, ["anonymise", "--format", "json", "--home", home, "--now", at])
    assert real.exit_code == 0, real.output
    data = json.loads(real.output)
    assert data["aggregates_written"] >= 1 and data["min_group_subjects"] >= K_MIN
