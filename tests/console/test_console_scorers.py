"""The third-party scorer endpoints on a real store (SQLite and PostgreSQL): the gated,
pseudonymous feature feed, its paging, and scores posted back, sealed and audited.

The event's windows go through the real WindowCommitter and CrowdStepper
(:class:`~tests.console.page_fixtures.LiveDriver`), with a roster of 20 wristbands: one staff
band and two that opted out, whose windows the gates drop whole (no score record), so the
feed must never name them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import MetaData, create_engine, select

from flowaudit.config import Settings
from flowaudit.console.app import create_app
from flowaudit.console.keys import KeyInfo
from flowaudit.console.replay import Replay
from flowaudit.console.scorers import FEED_WINDOWS, SCORE_KIND, subject_of
from pipeline.features import FEATURE_NAMES
from retention.models import LiveWindowRecord
from tests.console.console_fixtures import (
    NONE,
    SCORERS,
    Home,
    TestClient,
    audit,
    bands,
    bearer,
    client_fixture,
    error_of,
    gated_in,
    home_fixture,
    read,
    scorer_home,
)

FEED_KEYS = {"window", "start_at", "subject", "zone", "features", "frames"}


home = home_fixture("console-scorers", scorer_home)
client = client_fixture()


# -- helpers -----------------------------------------------------------------------------------
def info(client: TestClient, key: str) -> KeyInfo:
    return client.app.state.service.keys.authenticate(f"Bearer {key}")  # type: ignore


def feed(client: TestClient, key: str, after: int = -1, event: str = SCORERS) -> dict[str, Any]:
    r = client.get(f"/v1/events/{event}/features", params={"after": after},
                   headers=bearer(key))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def whole_feed(client: TestClient, key: str) -> tuple[list[dict[str, Any]], int]:
    """Every window of the feed, page by page until a page is empty; and the pages read."""
    windows: list[dict[str, Any]] = []
    after, pages = -1, 0
    while True:
        page = feed(client, key, after)
        pages += 1
        assert pages < 100, "the feed never ends"
        if not page["windows"]:
            assert page["cursor"] == after  # the end: the cursor stays where it was
            return windows, pages
        assert page["cursor"] > after
        windows += page["windows"]
        after = page["cursor"]


def live_rows(home: Home) -> dict[tuple[str, int], LiveWindowRecord]:
    def go(store: Any) -> dict[tuple[str, int], LiveWindowRecord]:
        with store.session() as session:
            rows = list(session.scalars(select(LiveWindowRecord)
                                        .where(LiveWindowRecord.event_id == SCORERS)))
            session.expunge_all()
        return {(r.subject_pseudonym, r.window): r for r in rows}
    out: dict[tuple[str, int], LiveWindowRecord] = read(home.settings, go)
    return out


def posted_records(home: Home) -> list[Any]:
    return read(home.settings, lambda store: list(store.iter_metadata(
        now=datetime.now(UTC), event_id=SCORERS, kind=SCORE_KIND)))


def every_row_as_text(settings: Settings) -> str:
    """Every row of every table of the home's database, as text (what a copy would show)."""
    engine = create_engine(settings.db_url)
    try:
        meta = MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            return "\n".join(repr(row) for table in meta.sorted_tables
                             for row in conn.execute(table.select()))
    finally:
        engine.dispose()


def database_bytes(settings: Settings) -> bytes:
    """The SQLite file and its WAL as stored on disk (empty for PostgreSQL)."""
    if not settings.db_url.startswith("sqlite"):
        return b""
    path = Path(settings.db_url.split(":///", 1)[1])
    return b"".join(p.read_bytes() for p in (path, path.with_name(path.name + "-wal"))
                    if p.exists())


# -- the feed ----------------------------------------------------------------------------------
def test_the_feed_serves_only_windows_that_passed_the_gates(home: Home,
                                                            client: TestClient) -> None:
    key = home.key(SCORERS, "scorer", "acme gates")
    me = info(client, key)
    passed = gated_in(home)
    dropped = {p for p, _, consent, staff in bands(home).values()
               if consent == "opted_out" or staff}
    assert len(passed) == 17 and len(dropped) == 3  # the roster this test relies on
    rows = live_rows(home)
    windows, _ = whole_feed(client, key)
    stepped = home.drivers[SCORERS].window
    assert {w["window"] for w in windows} == set(range(stepped + 1))
    by_subject = {subject_of(me, p): p for p in passed}
    assert not {subject_of(me, p) for p in dropped} & {w["subject"] for w in windows}
    for w in windows:
        pseudonym = by_subject[w["subject"]]  # a KeyError would be a band that was dropped
        row = rows[(pseudonym, w["window"])]
        assert w["zone"] == passed[pseudonym]
        assert set(w["features"]) == set(FEATURE_NAMES) - {"frames"}
        # frames: what the gates let through (received less every drop, speech included)
        assert w["frames"] == row.frames_received - sum(row.drops.values()) > 0
        assert w["start_at"] == row.start_at.isoformat()
    for window in range(stepped + 1):
        assert sorted(w["subject"] for w in windows if w["window"] == window) == sorted(
            by_subject)
    # the staff and opted-out bands' windows were committed, just never scored nor served
    assert {rows[(p, 0)].score_record_id for p in dropped} == {None}
    assert all(rows[(p, 0)].drops.get("staff") or rows[(p, 0)].drops.get("no_consent")
               for p in dropped)


def test_a_window_is_served_only_once_the_crowd_step_has_taken_it(home: Home,
                                                                  client: TestClient) -> None:
    key = home.key(SCORERS, "scorer", "acme step")
    driver = home.drivers[SCORERS]
    k = driver.window + 1
    committed = [driver._window(i, k) for i in range(len(driver.bands))]
    driver.committer.commit_batch(committed, now=datetime.now(UTC))
    try:
        page = feed(client, key, k - 1)
        assert page["windows"] == [] and page["cursor"] == k - 1
        subject = subject_of(info(client, key), next(iter(gated_in(home))))
        r = client.post(f"/v1/events/{SCORERS}/scores", headers=bearer(key),
                        json={"scores": [{"window": k, "subject": subject, "score": 50}]})
        assert r.status_code == 404 and error_of(r) == "unknown_subject"
    finally:
        driver.steps += driver.stepper.step_all()
        driver.window = k
    page = feed(client, key, k - 1)
    assert {w["window"] for w in page["windows"]} == {k} and page["cursor"] == k


def test_responses_name_no_serial_no_stored_pseudonym_and_no_audio(home: Home,
                                                                  client: TestClient) -> None:
    key = home.key(SCORERS, "scorer", "acme scan")
    windows, _ = whole_feed(client, key)
    assert windows
    text = json.dumps(feed(client, key)) + json.dumps(windows)
    for serial, (pseudonym, _, _, _) in bands(home).items():
        assert serial not in text and pseudonym not in text
    assert "pcm" not in text and "audio" not in text and "serial" not in text
    for w in windows:
        assert set(w) == FEED_KEYS
        assert all(isinstance(v, float | int) for v in w["features"].values())
        assert isinstance(w["frames"], int) and isinstance(w["zone"], str)
    # the raw audio the store keeps for these windows is never served, even when asked for
    r = client.get(f"/v1/events/{SCORERS}/features", params={"include": "audio"},
                   headers=bearer(key))
    assert r.status_code == 403 and error_of(r) == "raw_audio_never_served"


def test_pseudonyms_are_stable_for_a_key_and_unlinkable_across_keys(home: Home,
                                                                   client: TestClient) -> None:
    a, b = home.key(SCORERS, "scorer", "acme a"), home.key(SCORERS, "scorer", "acme b")
    first, again, other = feed(client, a), feed(client, a), feed(client, b)
    pairs = [(w["window"], w["subject"]) for w in first["windows"]]
    assert pairs and pairs == [(w["window"], w["subject"]) for w in again["windows"]]
    subjects_a = {w["subject"] for w in first["windows"]}
    subjects_b = {w["subject"] for w in other["windows"]}
    assert len(subjects_a) == len(subjects_b) == len(gated_in(home))
    assert not subjects_a & subjects_b  # the same wristbands, no name in common
    # a subject is the same across windows of one key: one per wristband, in every window
    for window in {w["window"] for w in first["windows"]}:
        assert {w["subject"] for w in first["windows"] if w["window"] == window} == subjects_a
    # nor does the order give them away: paired by position, the two feeds would show the
    # same features in the same order (row order); in each key's own order they do not (the
    # chance of that with n distinct wristbands is 1/n!)
    def in_order(page: dict[str, Any], window: int) -> list[str]:
        return [json.dumps(w["features"], sort_keys=True) for w in page["windows"]
                if w["window"] == window]

    w0 = first["windows"][0]
    shown_a, shown_b = in_order(first, w0["window"]), in_order(other, w0["window"])
    assert len(set(shown_a)) == len(shown_a) > 4 and sorted(shown_a) == sorted(shown_b)
    assert shown_a != shown_b
    # and one key's subject means nothing to another key
    r = client.post(f"/v1/events/{SCORERS}/scores", headers=bearer(b),
                    json={"scores": [{"window": w0["window"], "subject": w0["subject"],
                                      "score": 10}]})
    assert r.status_code == 404 and error_of(r) == "unknown_subject"


def test_paging_with_after_covers_every_window_once_and_ends(home: Home,
                                                            client: TestClient) -> None:
    driver = home.drivers[SCORERS]
    home.advance(SCORERS, max(0, FEED_WINDOWS + 5 - driver.window))
    stepped = driver.window
    assert stepped > FEED_WINDOWS  # more than one page
    key = home.key(SCORERS, "scorer", "acme pages")
    windows, pages = whole_feed(client, key)
    # full pages of FEED_WINDOWS windows, the rest, then the empty page that ends the feed
    assert pages == -(-(stepped + 1) // FEED_WINDOWS) + 1
    first = feed(client, key)
    assert {w["window"] for w in first["windows"]} == set(range(FEED_WINDOWS))
    assert first["cursor"] == FEED_WINDOWS - 1
    pairs = [(w["window"], w["subject"]) for w in windows]
    assert len(pairs) == len(set(pairs)) == (stepped + 1) * len(gated_in(home))
    assert [w["window"] for w in windows] == sorted(w["window"] for w in windows)
    late = feed(client, key, stepped + 50)  # a cursor past the end: nothing, and no error
    assert late["windows"] == [] and late["cursor"] == stepped + 50
    r = client.get(f"/v1/events/{SCORERS}/features", params={"after": -2}, headers=bearer(key))
    assert r.status_code == 422 and error_of(r) == "invalid_request"


# -- who may ----------------------------------------------------------------------------------
def test_a_policy_without_scorers_refuses_the_feed_and_the_scores(home: Home,
                                                                 client: TestClient) -> None:
    key = home.key(NONE, "scorer", "acme none")
    r = client.get(f"/v1/events/{NONE}/features", headers=bearer(key))
    assert r.status_code == 403 and error_of(r) == "third_party_scorers_off"
    assert "third_party_scorers = false" in r.json()["error"]["message"]
    assert "windows" not in r.json()
    r = client.post(f"/v1/events/{NONE}/scores", headers=bearer(key),
                    json={"scores": [{"window": 0, "subject": "0" * 24, "score": 5}]})
    assert r.status_code == 403 and error_of(r) == "third_party_scorers_off"
    me = info(client, key)
    refused = [e.details for e in audit(home.settings, "console.refused")
               if e.details.get("key") == me.key_id]
    assert {d["reason"] for d in refused} == {"third_party_scorers_off"}
    assert {d["label"] for d in refused} == {"acme none"}


def test_a_dj_key_reads_no_features_and_a_scorer_key_posts_no_controls(
        home: Home, client: TestClient) -> None:
    for role in ("artist", "viewer"):
        key = home.key(SCORERS, role, f"booth {role}")
        r = client.get(f"/v1/events/{SCORERS}/features", headers=bearer(key))
        assert r.status_code == 403 and error_of(r) == "wrong_role"
        r = client.post(f"/v1/events/{SCORERS}/scores", headers=bearer(key),
                        json={"scores": [{"window": 0, "subject": "0" * 24, "score": 5}]})
        assert r.status_code == 403 and error_of(r) == "wrong_role"
    scorer = home.key(SCORERS, "scorer", "acme controls")
    for kind in ("override", "veto", "pin"):
        r = client.post(f"/v1/events/{SCORERS}/controls/{kind}", headers=bearer(scorer),
                        json={"track_id": "T0001"})
        assert r.status_code == 403 and error_of(r) == "wrong_role"
    other = home.key(NONE, "scorer", "acme elsewhere")
    r = client.get(f"/v1/events/{SCORERS}/features", headers=bearer(other))
    assert r.status_code == 403 and error_of(r) == "wrong_event"


def test_over_the_rate_limit_the_feed_and_the_scores_are_429(home: Home,
                                                             client: TestClient) -> None:
    key = home.key(SCORERS, "scorer", "acme slow", rate=0.1, burst=2)
    assert [client.get(f"/v1/events/{SCORERS}/features", headers=bearer(key)).status_code
            for _ in range(2)] == [200, 200]
    for r in (client.get(f"/v1/events/{SCORERS}/features", headers=bearer(key)),
              client.post(f"/v1/events/{SCORERS}/scores", headers=bearer(key),
                          json={"scores": [{"window": 0, "subject": "0" * 24, "score": 1}]})):
        assert r.status_code == 429 and error_of(r) == "rate_limited"
        assert 1 <= int(r.headers["retry-after"]) <= 10
    me = info(client, key)
    assert any(e.details["reason"] == "rate_limited" and e.details["key"] == me.key_id
               for e in audit(home.settings, "console.refused"))


# -- scores posted back ---------------------------------------------------------------------
@pytest.mark.parametrize("item, code", [
    ({"score": 100.5}, 422),                 # above the range
    ({"score": -0.1}, 422),                  # below it
    ({"score": "high"}, 422),                # not a number
    ({"subject": "WB-000001"}, 422),         # a serial is not a subject
    ({"note": "great crowd"}, 422),          # no free text rides along
    ({"window": -1}, 422),
    ({"window": 99_999}, 404),               # no such window in the feed
    ({"subject": "f" * 24}, 404),            # no such subject in this key's feed
])
def test_posted_scores_are_validated_and_nothing_is_stored_on_a_refusal(
        home: Home, client: TestClient, item: dict[str, Any], code: int) -> None:
    key = home.key(SCORERS, "scorer", "acme checks")
    good = feed(client, key)["windows"][0]
    bad = {"window": good["window"], "subject": good["subject"], "score": 50.0, **item}
    before = len(posted_records(home))
    # the bad score after a good one: the good one is not stored either
    r = client.post(f"/v1/events/{SCORERS}/scores", headers=bearer(key), json={"scores": [
        {"window": good["window"], "subject": good["subject"], "score": 40.0}, bad]})
    assert r.status_code == code
    assert error_of(r) == ("invalid_request" if code == 422 else "unknown_subject")
    assert "1" in r.json()["error"]["message"]  # it names the second score
    assert len(posted_records(home)) == before


def test_a_post_naming_one_window_and_subject_twice_is_refused(home: Home,
                                                              client: TestClient) -> None:
    key = home.key(SCORERS, "scorer", "acme twice")
    w = feed(client, key)["windows"][0]
    before = len(posted_records(home))
    twice = [{"window": w["window"], "subject": w["subject"], "score": s} for s in (20, 80)]
    r = client.post(f"/v1/events/{SCORERS}/scores", headers=bearer(key),
                    json={"scores": twice})
    assert r.status_code == 400 and error_of(r) == "refused"
    assert "scores 0 and 1 name the same window" in r.json()["error"]["message"]
    assert len(posted_records(home)) == before
    for body in ({"scores": []}, {}, {"scores": [{}] * 501}):
        r = client.post(f"/v1/events/{SCORERS}/scores", headers=bearer(key), json=body)
        assert r.status_code == 422 and error_of(r) == "invalid_request"


def test_posted_scores_are_sealed_stored_and_audited_with_the_key(home: Home,
                                                                 client: TestClient) -> None:
    key = home.key(SCORERS, "scorer", "acme seal")
    me = info(client, key)
    page = feed(client, key)["windows"]
    by_subject = {subject_of(me, p): p for p in gated_in(home)}
    before_text, before_bytes = every_row_as_text(home.settings), database_bytes(home.settings)
    value = next(f"{v:.2f}" for v in (87.19, 73.41, 66.83, 91.27)
                 if f"{v:.2f}" not in before_text and f"{v:.2f}".encode() not in before_bytes)
    chosen = [page[0], page[-1]]
    r = client.post(f"/v1/events/{SCORERS}/scores", headers=bearer(key), json={"scores": [
        {"window": w["window"], "subject": w["subject"], "score": float(value)}
        for w in chosen]})
    assert r.status_code == 201 and r.json() == {"stored": 2}
    mine = [rec for rec in posted_records(home) if rec.payload["scorer_key"] == me.key_id]
    assert sorted((rec.pseudonym, rec.payload["window"], rec.payload["score"]) for rec in mine) \
        == sorted((by_subject[w["subject"]], w["window"], float(value)) for w in chosen)
    assert {rec.payload["scorer"] for rec in mine} == {"acme seal"}
    # sealed: the value is in no row and in no byte of the database, only in the ciphertext
    after_text, after_bytes = every_row_as_text(home.settings), database_bytes(home.settings)
    assert value not in after_text and "acme seal" in after_text  # the scan sees the rows
    assert value.encode() not in after_bytes
    assert home.backend != "sqlite" or b"acme seal" in after_bytes
    entries = [e for e in audit(home.settings, "console.score") if e.object_id == me.key_id]
    assert len(entries) == 1
    details = entries[0].details
    assert details["label"] == "acme seal" and details["event"] == SCORERS
    assert details["scores"] == 2 and entries[0].object_type == "console_key"
    assert value not in repr(details) and not any(w["subject"] in repr(details) for w in page)


def test_a_replay_serves_the_feed_up_to_its_clock_and_takes_no_scores(home: Home) -> None:
    clock = [0.0]
    replay = Replay(SCORERS, 1.0, clock=lambda: clock[0])
    key = home.key(SCORERS, "scorer", "acme replay")
    with TestClient(create_app(home.settings, replay=replay)) as replaying:
        window = home.events[SCORERS].spec.window.total_seconds()
        clock[0] = 2.5 * window  # three windows' starts are behind the replay's clock
        page = feed(replaying, key)
        assert {w["window"] for w in page["windows"]} == {0, 1, 2} and page["cursor"] == 2
        assert feed(replaying, key, 2)["windows"] == []
        clock[0] = 4.5 * window
        assert {w["window"] for w in feed(replaying, key, 2)["windows"]} == {3, 4}
        w = page["windows"][0]
        r = replaying.post(f"/v1/events/{SCORERS}/scores", headers=bearer(key),
                           json={"scores": [{"window": w["window"], "subject": w["subject"],
                                             "score": 5}]})
        assert r.status_code == 409 and error_of(r) == "replay_read_only"


def test_an_erased_wristband_leaves_the_feed_and_takes_no_scores(home: Home,
                                                                 client: TestClient) -> None:
    """Last of the module: it erases a wristband the tests above count on."""
    from retention.subject_requests import erase_pseudonym

    key = home.key(SCORERS, "scorer", "acme erasure")
    me = info(client, key)
    serial, (pseudonym, _, _, _) = next((s, b) for s, b in bands(home).items()
                                        if b[0] in gated_in(home))
    subject = subject_of(me, pseudonym)
    served = [w for w in feed(client, key)["windows"] if w["subject"] == subject]
    assert served
    read(home.settings, lambda store: erase_pseudonym(store, pseudonym, now=datetime.now(UTC)))
    windows, _ = whole_feed(client, key)
    assert windows and subject not in {w["subject"] for w in windows}
    before = len(posted_records(home))
    r = client.post(f"/v1/events/{SCORERS}/scores", headers=bearer(key), json={"scores": [
        {"window": served[0]["window"], "subject": subject, "score": 12.5}]})
    assert r.status_code == 404 and error_of(r) == "unknown_subject", r.text
    assert serial not in r.text and pseudonym not in r.text
    assert len(posted_records(home)) == before
