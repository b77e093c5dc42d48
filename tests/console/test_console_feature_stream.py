"""The scorer feature stream (``GET /v1/events/{id}/features/stream``) over real uvicorn and a
real store (SQLite and PostgreSQL): windows arrive as the crowd step takes them, each once, in
order, exactly the GET feed's window objects; Last-Event-ID resumes exactly after it, even in
the middle of a window; the feed's refusals (audited as the GET's are); no serial, no stored
pseudonym, no audio in the stream; it ends when the client goes, and when its key is revoked;
a replay up to its clock.

The home is the scorer tests' (20 wristbands, 17 of which pass the gates).
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowaudit.console.app import create_app
from flowaudit.console.documents import (
    FEATURE_CURSOR_PATTERN,
    FEATURE_MESSAGES,
    NEXT_CURSOR_PATTERN,
    FeaturePage,
)
from flowaudit.console.feature_stream import FeatureCursor, parse_feature_cursor, poll_features
from flowaudit.console.keys import ConsoleKeys
from flowaudit.console.replay import Replay
from flowaudit.console.scorers import feature_windows
from tests.console.console_fixtures import (
    NONE,
    SCORERS,
    Home,
    Reader,
    Sse,
    audit,
    bands,
    bearer,
    error_of,
    gated_in,
    home_fixture,
    read,
    scorer_home,
    server_fixture,
)
from tests.console.page_fixtures import ConsoleServer

PATH = f"/v1/events/{SCORERS}/features/stream"


home = home_fixture("console-feature-stream", scorer_home)
server = server_fixture()


# -- helpers -----------------------------------------------------------------------------------
def stream(server: ConsoleServer, key: str, last: str | None = None) -> Reader:
    headers = {**bearer(key), "Accept": "text/event-stream"}
    if last is not None:
        headers["Last-Event-ID"] = last
    return Reader(f"{server.url}{PATH}", headers).start()


def get_feed(server: ConsoleServer, key: str) -> list[dict[str, Any]]:
    """Every window of the GET feed for ``key``, page by page, in the stream's order."""
    windows: list[dict[str, Any]] = []
    after = -1
    for _ in range(100):
        r = httpx.get(f"{server.url}/v1/events/{SCORERS}/features", params={"after": after},
                      headers=bearer(key))
        assert r.status_code == 200, r.text
        page = r.json()
        if not page["windows"] and page["cursor"] == after:
            return sorted(windows, key=lambda w: (w["window"], w["subject"]))
        windows += page["windows"]
        after = page["cursor"]
    raise AssertionError("the GET feed never ends")


def upto(top: int, count: int) -> Any:
    """A ``take`` condition: ``count`` events of each window up to ``top`` arrived."""
    def done(got: list[Sse]) -> bool:
        return sum(1 for e in got if e.data["window"] == top) >= count
    return done


def checked(events: list[Sse]) -> list[tuple[int, str]]:
    """The (window, subject) of each event, once each is checked: a ``features`` event whose
    payload is the documented window object and whose id is the documented cursor at it (no
    late window among them)."""
    out = []
    for e in events:
        assert e.kind == "features"
        FEATURE_MESSAGES["features"].model_validate(e.data)
        assert e.id is not None and re.fullmatch(FEATURE_CURSOR_PATTERN, e.id)
        assert e.id.startswith(f"{e.data['window']}.{e.data['subject']}@")
        out.append((e.data["window"], e.data["subject"]))
    return out


def key_id(server: ConsoleServer, key: str) -> str:
    service = server.server.config.app.state.service  # type: ignore[attr-defined]
    return str(service.keys.authenticate(f"Bearer {key}").key_id)


def wait_streams_closed(server: ConsoleServer) -> int:
    service = server.server.config.app.state.service  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while service.streams and time.monotonic() < deadline:
        time.sleep(0.05)
    return int(service.streams)


# -- the feed, pushed --------------------------------------------------------------------------
def test_windows_arrive_as_the_store_changes_once_each_in_order(home: Home,
                                                                server: ConsoleServer) -> None:
    key = home.key(SCORERS, "scorer", "acme push")
    per_window = len(gated_in(home))
    top = home.drivers[SCORERS].window
    reader = stream(server, key)
    try:
        first = reader.take(upto(top, per_window))
        assert reader.status == 200
        home.advance(SCORERS, 3)
        more = reader.take(upto(top + 3, per_window))
    finally:
        reader.close()
    pairs = checked(first) + checked(more)
    assert len(pairs) == len(set(pairs)) == (top + 4) * per_window  # each once
    assert pairs == sorted(pairs)  # window by window, subjects in order
    assert {w for w, _ in checked(more)} == {top + 1, top + 2, top + 3}
    # the very objects the GET feed serves this key, no more, no less
    assert [e.data for e in first + more] == get_feed(server, key)


def test_last_event_id_resumes_exactly_after_it(home: Home, server: ConsoleServer) -> None:
    key = home.key(SCORERS, "scorer", "acme resume")
    per_window = len(gated_in(home))
    top = home.drivers[SCORERS].window
    assert top >= 3
    first = stream(server, key)
    try:  # go in the middle of window 2
        seen = first.take(lambda got: len(got) >= 2 * per_window + 5)
    finally:
        first.close()
    last = seen[2 * per_window + 4]
    assert last.data["window"] == 2
    home.advance(SCORERS, 2)
    whole = get_feed(server, key)
    rest = whole[2 * per_window + 5:]
    again = stream(server, key, last.id)
    try:
        resumed = again.take(lambda got: len(got) >= len(rest))
    finally:
        again.close()
    assert [e.data for e in resumed] == rest  # nothing twice, nothing missing
    checked(resumed)
    # a bare window number (the GET feed's cursor) resumes after that window
    bare = stream(server, key, "1")
    try:
        after_1 = bare.take(lambda got: len(got) >= per_window)
    finally:
        bare.close()
    assert [e.data for e in after_1] == whole[2 * per_window:3 * per_window]


@pytest.mark.parametrize("cursor", ["nope", "2.3.4", "2.ABCDEF", "2." + "a" * 23, "1e3"])
def test_a_bad_last_event_id_is_a_json_400_not_a_stream(home: Home, server: ConsoleServer,
                                                        cursor: str) -> None:
    key = home.key(SCORERS, "scorer", "acme bad cursor")
    r = httpx.get(f"{server.url}{PATH}", headers={**bearer(key), "Last-Event-ID": cursor})
    assert r.status_code == 400 and error_of(r) == "bad_cursor"
    assert r.headers["content-type"] == "application/json"


def test_refusals_are_json_errors_audited_as_the_feeds(home: Home,
                                                       server: ConsoleServer) -> None:
    for role in ("artist", "viewer"):
        key = home.key(SCORERS, role, f"booth {role} stream")
        r = httpx.get(f"{server.url}{PATH}", headers=bearer(key))
        assert r.status_code == 403 and error_of(r) == "wrong_role"
        assert r.headers["content-type"] == "application/json"
        refused = [e.details for e in audit(home.settings, "console.refused")
                   if e.details.get("key") == key_id(server, key)]
        assert [(d["reason"], d["route"]) for d in refused] == [
            ("wrong_role", "/v1/events/{event_id}/features/stream")]
    off = home.key(NONE, "scorer", "acme stream none")
    r = httpx.get(f"{server.url}/v1/events/{NONE}/features/stream", headers=bearer(off))
    assert r.status_code == 403 and error_of(r) == "third_party_scorers_off"
    assert "third_party_scorers = false" in r.json()["error"]["message"]
    refused = [e.details for e in audit(home.settings, "console.refused")
               if e.details.get("key") == key_id(server, off)]
    assert [(d["reason"], d["label"], d["role"]) for d in refused] == [
        ("third_party_scorers_off", "acme stream none", "scorer")]
    other = home.key(NONE, "scorer", "acme stream elsewhere")
    r = httpx.get(f"{server.url}{PATH}", headers=bearer(other))
    assert r.status_code == 403 and error_of(r) == "wrong_event"
    r = httpx.get(f"{server.url}{PATH}", headers={"Authorization": "Bearer fak_" + "B" * 43})
    assert r.status_code == 401 and error_of(r) == "bad_key"
    assert wait_streams_closed(server) == 0  # none of them opened a stream


def test_the_stream_names_no_serial_no_stored_pseudonym_and_no_audio(
        home: Home, server: ConsoleServer) -> None:
    key = home.key(SCORERS, "scorer", "acme raw scan")
    expected = len(get_feed(server, key))
    assert expected
    text, events = "", 0
    with httpx.Client(timeout=httpx.Timeout(10.0, read=20.0)) as client, \
            client.stream("GET", f"{server.url}{PATH}", headers=bearer(key)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        sock = response.extensions["network_stream"].get_extra_info("socket")
        for chunk in response.iter_text():
            text += chunk
            events = text.count("event: features\n")
            if events >= expected and text.endswith("\n\n"):
                sock.shutdown(socket.SHUT_RDWR)  # go at once (see Reader.close)
                break
    assert events == expected
    assert text.startswith("retry: 2000\n\n")
    for serial, (pseudonym, _, _, _) in bands(home).items():
        assert serial not in text and pseudonym not in text
    lowered = text.lower()
    assert "pcm" not in lowered and "audio" not in lowered and "serial" not in lowered
    assert wait_streams_closed(server) == 0


def test_the_stream_ends_when_the_client_goes(home: Home, server: ConsoleServer) -> None:
    service = server.server.config.app.state.service  # type: ignore[attr-defined]
    assert wait_streams_closed(server) == 0  # the other tests' streams are gone
    reader = stream(server, home.key(SCORERS, "scorer", "acme goes"))
    reader.take(lambda got: len(got) >= 1)
    assert service.streams == 1
    reader.close()
    assert wait_streams_closed(server) == 0


def test_the_stream_ends_when_its_key_is_revoked(home: Home, server: ConsoleServer) -> None:
    key = home.key(SCORERS, "scorer", "acme revoked")
    reader = stream(server, key)
    try:
        reader.take(lambda got: len(got) >= 1)
        read(home.settings, lambda store: ConsoleKeys(store).revoke(key_id(server, key),
                                                                    datetime.now(UTC)))
        assert wait_streams_closed(server) == 0  # the server ended it; the client is still on
        deadline = time.monotonic() + 10
        while reader.running() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not reader.running() and reader.error is None  # the response ended cleanly
    finally:
        reader.close()
    r = httpx.get(f"{server.url}{PATH}", headers=bearer(key))
    assert r.status_code == 401 and error_of(r) == "revoked_key"


# -- replay ------------------------------------------------------------------------------------
def test_a_replay_streams_the_feed_up_to_its_clock(home: Home) -> None:
    clock = [0.0]
    replay = Replay(SCORERS, 1.0, clock=lambda: clock[0])
    key = home.key(SCORERS, "scorer", "acme replay stream")
    per_window = len(gated_in(home))
    window = home.events[SCORERS].spec.window.total_seconds()
    replaying = ConsoleServer(create_app(home.settings, replay=replay, poll_interval=0.05,
                                         keepalive=0.2)).start()
    clock[0] = 2.5 * window  # three windows' starts are behind the replay's clock
    try:
        reader = stream(replaying, key)
        try:
            first = reader.take(upto(2, per_window))
            # nothing past the clock: the stream goes quiet (a keep-alive) with windows 0-2
            deadline = time.monotonic() + 20
            while reader.comments == 0 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert reader.comments >= 1 and reader.events.empty()
            clock[0] = 4.5 * window
            more = reader.take(upto(4, per_window))
        finally:
            reader.close()
    finally:
        replaying.stop()
    assert {w for w, _ in checked(first)} == {0, 1, 2}
    assert {w for w, _ in checked(more)} == {3, 4}
    assert len(first) == 3 * per_window and len(more) == 2 * per_window


# -- windows committed late --------------------------------------------------------------------
def held_band(home: Home) -> int:
    """The index of a wristband whose windows pass the gates (so the feed serves them)."""
    gated = gated_in(home)
    return next(i for i, band in enumerate(home.drivers[SCORERS].bands) if band[0] in gated)


def test_a_window_committed_late_arrives_once_on_the_stream_and_after_a_reconnect(
        home: Home, server: ConsoleServer) -> None:
    key = home.key(SCORERS, "scorer", "acme late")
    driver, per_window, band = home.drivers[SCORERS], len(gated_in(home)), held_band(home)
    reader = stream(server, key)
    try:
        first = reader.take(upto(driver.window, per_window))
        late = driver.window + 1
        driver.advance(hold={band})  # a killed worker holds the band's window `late`
        home.advance(SCORERS, 2)
        top = driver.window
        passed = reader.take(upto(top, per_window))
        # the crowd step of `late` was taken without it, and the stream went past it
        assert sum(e.data["window"] == late for e in passed) == per_window - 1
        before = passed[-1].id  # a client that goes now resumes from here
        driver.commit_late([(band, late)])  # redelivered
        got = reader.take(lambda g: len(g) >= 1)
        driver.advance()
        after = reader.take(upto(top + 1, per_window))
    finally:
        reader.close()
    assert [e.data["window"] for e in got] == [late]
    assert got[0].id is not None and re.fullmatch(FEATURE_CURSOR_PATTERN, got[0].id)
    FEATURE_MESSAGES["features"].model_validate(got[0].data)
    assert {e.data["window"] for e in after} == {top + 1}
    seen = first + passed + got + after
    pairs = [(e.data["window"], e.data["subject"]) for e in seen]
    feed = get_feed(server, key)
    assert len(pairs) == len(set(pairs)) == len(feed)  # each once, the late one too
    def order(w: dict[str, Any]) -> tuple[int, str]:
        return w["window"], w["subject"]

    assert sorted((e.data for e in seen), key=order) == feed  # the GET feed's very objects
    # a client that went before the late commit gets it, then the next window, nothing twice
    driver.advance()
    for cursor, expected in ((before, got + after), (got[0].id, after), (after[-1].id, [])):
        again = stream(server, key, cursor)
        try:
            resumed = again.take(upto(top + 2, per_window))
        finally:
            again.close()
        assert [e.data for e in resumed[:len(expected)]] == [e.data for e in expected]
        assert {e.data["window"] for e in resumed[len(expected):]} == {top + 2}
        assert len(resumed) == len(expected) + per_window


def test_an_older_w_s_cursor_still_resumes_after_it(home: Home, server: ConsoleServer) -> None:
    key = home.key(SCORERS, "scorer", "acme older cursor")
    per_window = len(gated_in(home))
    whole = get_feed(server, key)
    at = whole[per_window + 2]  # window 1, its third subject
    old = stream(server, key, f"{at['window']}.{at['subject']}")
    try:
        rest = old.take(lambda got: len(got) >= len(whole) - per_window - 3)
    finally:
        old.close()
    assert [e.data for e in rest] == whole[per_window + 3:]


FEED = f"/v1/events/{SCORERS}/features"


def page(server: ConsoleServer, key: str, **params: Any) -> dict[str, Any]:
    """One page of the polled feed, checked against the documented page."""
    r = httpx.get(f"{server.url}{FEED}", params=params, headers=bearer(key))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    FeaturePage.model_validate(body)
    assert re.fullmatch(NEXT_CURSOR_PATTERN, body["next_cursor"])
    return body


def drain(server: ConsoleServer, key: str, cursor: str) -> tuple[list[dict[str, Any]], str]:
    """Every window the polled feed has past ``cursor``, page by page with ``next_cursor``,
    and the cursor after them."""
    windows: list[dict[str, Any]] = []
    for _ in range(100):
        body = page(server, key, cursor=cursor)
        windows += body["windows"]
        if not body["windows"] and body["next_cursor"] == cursor:
            return windows, cursor
        cursor = body["next_cursor"]
    raise AssertionError("the polled feed never ends")


def test_polling_with_next_cursor_gets_a_late_window_once_as_the_stream_does(
        home: Home, server: ConsoleServer) -> None:
    key = home.key(SCORERS, "scorer", "acme late poll")
    driver, per_window, band = home.drivers[SCORERS], len(gated_in(home)), held_band(home)
    reader = stream(server, key)
    try:
        pushed = reader.take(upto(driver.window, per_window))
        polled, cursor = drain(server, key, "")  # from the feed's start
        late = driver.window + 1
        driver.advance(hold={band})  # a killed worker holds the band's window `late`
        home.advance(SCORERS, 2)
        top = driver.window
        pushed += reader.take(upto(top, per_window))
        more, cursor = drain(server, key, cursor)
        assert sum(w["window"] == late for w in more) == per_window - 1  # passed without it
        polled += more
        driver.commit_late([(band, late)])  # redelivered
        pushed += reader.take(lambda g: len(g) >= 1)
        got, cursor = drain(server, key, cursor)
        assert [w["window"] for w in got] == [late]
        polled += got
        driver.advance()
        pushed += reader.take(upto(top + 1, per_window))
        more, cursor = drain(server, key, cursor)
        assert {w["window"] for w in more} == {top + 1}
        polled += more
    finally:
        reader.close()
    pairs = [(w["window"], w["subject"]) for w in polled]
    assert len(pairs) == len(set(pairs))  # each once, the late one too
    assert polled == [e.data for e in pushed]  # what the stream sent, in its order
    feed = get_feed(server, key)  # paged afresh by window, it has the late one too
    assert sorted(polled, key=lambda w: (w["window"], w["subject"])) == feed
    # the stream resumes from a page's next_cursor exactly after it, and the other way round
    driver.advance()
    again = stream(server, key, cursor)
    try:
        resumed = again.take(upto(top + 2, per_window))
    finally:
        again.close()
    assert [e.data for e in resumed] == drain(server, key, cursor)[0]
    assert {e.data["window"] for e in resumed} == {top + 2} and len(resumed) == per_window
    assert drain(server, key, str(resumed[-1].id))[0] == []


def test_an_after_poll_is_as_before_and_its_next_cursor_goes_on_with_cursor(
        home: Home, server: ConsoleServer) -> None:
    key = home.key(SCORERS, "scorer", "acme after poll")
    driver, band = home.drivers[SCORERS], held_band(home)
    service = server.server.config.app.state.service  # type: ignore[attr-defined]
    event, info = service.reader.event(SCORERS), service.keys.authenticate(f"Bearer {key}")
    first = page(server, key, after=-1)
    old = feature_windows(service.store, event, info, -1, datetime.now(UTC), None)
    assert set(first) == {"cursor", "windows", "stepped", "next_cursor"}
    assert {k: first[k] for k in old} == old  # the page an old client gets, as it was
    after = first["cursor"]
    while (body := page(server, key, after=after))["windows"]:
        after = body["cursor"]
    assert body["cursor"] == after and body["next_cursor"].startswith(f"{after}@")
    switch = body["next_cursor"]
    late = driver.window + 1
    driver.advance(hold={band})
    driver.advance()
    by_window = page(server, key, after=after)
    assert {w["window"] for w in by_window["windows"]} == {late, late + 1}
    driver.commit_late([(band, late)])
    # after= still pages by window: the late window is in no later page
    assert page(server, key, after=by_window["cursor"])["windows"] == []
    # with cursor= from the page before, every window once, the late one too
    windows, _ = drain(server, key, switch)
    pairs = sorted((w["window"], w["subject"]) for w in windows)
    assert pairs == sorted((w["window"], w["subject"]) for w in feature_windows(
        service.store, event, info, after, datetime.now(UTC), None)["windows"])
    assert len(pairs) == len(set(pairs)) == len(by_window["windows"]) + 1


@pytest.mark.parametrize("params", [
    {"cursor": "nope"}, {"cursor": "2.3.4"}, {"cursor": "2.ABCDEF"},
    {"cursor": "2." + "a" * 23}, {"cursor": "1e3"},
    {"cursor": f"3.{'a' * 24}@5+4.{'b' * 24}@9"},  # late rows past the position: never an id
    {"cursor": "3@5", "after": "3"}, {"cursor": "", "after": "-1"},
])
def test_a_bad_cursor_or_both_cursor_and_after_is_400_bad_cursor(
        home: Home, server: ConsoleServer, params: dict[str, str]) -> None:
    key = home.key(SCORERS, "scorer", "acme bad poll")
    r = httpx.get(f"{server.url}{FEED}", params=params, headers=bearer(key))
    assert r.status_code == 400 and error_of(r) == "bad_cursor"
    assert "windows" not in r.json()


def _frames(chunks: list[bytes]) -> list[tuple[str, dict[str, Any]]]:
    """The (id, data) of each ``features`` event of a poll."""
    out = []
    for chunk in chunks:
        head, _, body = chunk.decode().partition("\ndata: ")
        ident = head.split("\n", 1)[0].removeprefix("id: ")
        assert "event: features" in head
        out.append((ident, json.loads(body)))
    return out


@settings(max_examples=12, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_any_commit_order_any_reconnects_each_window_once(home: Home, server: ConsoleServer,
                                                          data: st.DataObject) -> None:
    """Property: windows held back and committed late in any order, the client polling and
    going (even in the middle of a poll's events) at any point and resuming from the last id
    it saw: it gets every served window of the example exactly once."""
    service = server.server.config.app.state.service  # type: ignore[attr-defined]
    driver = home.drivers[SCORERS]
    event = service.reader.event(SCORERS)
    key = service.keys.authenticate(f"Bearer {prop_key(home)}")
    cursor = _drained(service.store, event, key)
    last = str(cursor)
    base, n = driver.window + 1, data.draw(st.integers(1, 3), label="windows")
    held = data.draw(st.lists(st.tuples(st.integers(0, len(driver.bands) - 1),
                                        st.integers(0, n - 1)),
                              max_size=5, unique=True), label="held")
    seen: list[tuple[int, str]] = []

    def poll(cut: bool) -> None:
        nonlocal cursor, last
        frames = _frames(poll_features(service.store, event, key, cursor, datetime.now(UTC),
                                       None))
        keep = data.draw(st.integers(0, len(frames)), label="cut") if cut else len(frames)
        for ident, window in frames[:keep]:
            seen.append((window["window"], window["subject"]))
            last = ident
        if keep < len(frames) or (cut and data.draw(st.booleans(), label="reconnect")):
            reconnected = parse_feature_cursor(last)  # the client went: it resumes from last
            assert reconnected is not None
            cursor = reconnected

    for offset in range(n):
        driver.advance(hold={b for b, o in held if o == offset})
        if data.draw(st.booleans(), label="poll"):
            poll(cut=True)
    for b, o in data.draw(st.permutations(held), label="late order"):
        if data.draw(st.booleans(), label="poll"):
            poll(cut=True)
        driver.commit_late([(b, base + o)])
    for _ in range(3):
        poll(cut=False)
    expected = [(w["window"], w["subject"]) for w in
                feature_windows(service.store, event, key, base - 1, datetime.now(UTC),
                                None)["windows"] if w["window"] < base + n]
    assert len(seen) == len(set(seen))  # nothing twice
    assert sorted(seen) == sorted(expected)  # nothing skipped, nothing else


_PROP_KEYS: dict[str, str] = {}


def prop_key(home: Home) -> str:
    """One scorer key per home for the property (its examples go on from each other)."""
    if home.backend not in _PROP_KEYS:
        _PROP_KEYS[home.backend] = home.key(SCORERS, "scorer", "acme property")
    return _PROP_KEYS[home.backend]


def _drained(store: Any, event: Any, key: Any) -> FeatureCursor:
    """A cursor past everything the feed serves now."""
    cursor = FeatureCursor(-1, None, 0)
    while poll_features(store, event, key, cursor, datetime.now(UTC), None):
        pass
    return cursor


def test_the_watermark_is_below_every_insert_in_flight(home: Home, server: ConsoleServer
                                                       ) -> None:
    """On PostgreSQL the watermark is refused (``None``) while a transaction that may still
    commit a lower id holds ``live_windows`` as an insert does, and makes no writer wait:
    another insert goes ahead meanwhile. On SQLite (one writer, ids committed in order) it
    is the largest id."""
    store = server.server.config.app.state.service.store  # type: ignore[attr-defined]
    top = read(home.settings, lambda s: s.live_window_watermark())
    if home.backend == "sqlite":
        home.advance(SCORERS)  # one row per wristband, the ids in commit order
        after = read(home.settings, lambda s: s.live_window_watermark())
        assert after == top + len(home.drivers[SCORERS].bands)
        return
    asked: list[int | None] = []
    with store.engine.connect() as writer, writer.begin():
        writer.exec_driver_sql("LOCK TABLE live_windows IN ROW EXCLUSIVE MODE")  # in flight
        watermark = threading.Thread(target=lambda: asked.append(store.live_window_watermark()))
        watermark.start()
        with store.engine.connect() as other, other.begin():  # a second worker's insert
            other.exec_driver_sql("LOCK TABLE live_windows IN ROW EXCLUSIVE MODE NOWAIT")
        watermark.join(10)
        assert asked == [None]  # refused, not waiting behind the writer
    assert store.live_window_watermark() == top  # the writer is done: nothing below it open
