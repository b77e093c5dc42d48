"""The /v1 API against its checked-in OpenAPI document (schemathesis, SQLite and PostgreSQL).

Requests are generated from ``flowaudit/console/openapi.json`` — the file in the repository,
not the app's own /v1/openapi.json — and sent to the real app in process (ASGI, no socket),
over a real home with live events. Every response must be a declared status code with a
declared content type and a body matching the document's schema, and no generated input may
get a 5xx. A steering strategy sends some requests without a key, some with a key of each
role for the event named in the path (so the authenticated paths are exercised past 401),
and sometimes puts a real catalogue track id into a control body (so controls are taken).

Known-good requests per operation (a real key for a real event, a live and a replayed
console) must get their documented answer too; for a 2xx schemathesis also asks again
without the key and with a bad one, which must be refused.

The stream (text/event-stream) never ends by itself: schemathesis reads it for a bounded
number of events, or until a bounded read timeout, and validates each event and its JSON
payload against the document.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.core import NOT_SET

from flowaudit.console.app import create_app
from flowaudit.console.documents import OPENAPI_FILE
from flowaudit.console.replay import Replay
from tests.console.console_fixtures import BACKENDS, POLICIES, Home, TestClient, console_home

ROLES = ("artist", "viewer", "scorer")
EVENTS = tuple(POLICIES)
#: a generous limit: the rate limiter is exercised in test_console_api, not here
LIMITS = {"rate": 1000.0, "burst": 10000}
#: examples per operation and backend: enough to find the shapes, small enough for CI
EXAMPLES = 25
#: how much of the (never-ending) stream one request reads
STREAM_EVENTS, STREAM_SECONDS = 3, 2.0


class _Target:
    """The ASGI app schemathesis calls: this module's current backend's console app, without
    its lifespan (the fixture's TestClient runs that: at the end the service writes its
    tallies, signs and closes the store)."""

    app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "lifespan":
            assert self.app is not None, "the api fixture sets the app"
            await self.app(scope, receive, send)


TARGET = _Target()
SCHEMA = schemathesis.openapi.from_path(OPENAPI_FILE, config=schemathesis.Config.from_dict(
    {"base-url": "http://testserver", "max-stream-events": STREAM_EVENTS}))
SCHEMA.app = TARGET


class Api:
    """The home under test, a key per (event, role), the catalogue's track ids. (Not a
    dataclass: hypothesis would print every field of it with each failing example.)"""

    def __init__(self, home: Home, keys: dict[tuple[str, str], str],
                 catalogue: list[dict[str, Any]]) -> None:
        self.home, self.keys, self.catalogue = home, keys, catalogue
        self.tracks = [t["id"] for t in catalogue]
        self.artists = sorted({t["artist"] for t in catalogue})
        self.artist = catalogue[0]["artist"]

    def __repr__(self) -> str:
        return f"Api({self.home.backend})"


@pytest.fixture(scope="module", params=BACKENDS)
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
        pg_available: bool) -> Iterator[Api]:
    tmp = tmp_path_factory.mktemp(f"console-openapi-{request.param}")
    with console_home(tmp, str(request.param), pg_available, warm=4) as home:
        keys = {(e, r): home.key(e, r, label=f"fuzz {r}", **LIMITS)
                for e in EVENTS for r in ROLES}
        app = create_app(home.settings, poll_interval=0.05, keepalive=0.2)
        with TestClient(app) as client:
            got = client.get("/v1/catalogue",
                             headers={"Authorization": f"Bearer {keys[EVENTS[0], 'viewer']}"})
            assert got.status_code == 200
            tracks = got.json()["tracks"]
            TARGET.app = app
            try:
                yield Api(home, keys, tracks)
            finally:
                TARGET.app = None


STEER = st.fixed_dictionaries({
    "event": st.sampled_from((None, *EVENTS)),
    "role": st.sampled_from((None, *ROLES)),
    "track": st.booleans(),
    "index": st.integers(0, 10_000),
})


def _steer(case: Any, api: Api, steer: dict[str, Any]) -> dict[str, str]:
    """Point ``case`` at a real event and track when ``steer`` says so; the headers to add.

    Only schema-valid cases are steered: a negative case keeps what schemathesis broke in
    it (and its own headers), so it must be refused."""
    if not case.meta.generation.mode.is_positive:
        return {}
    event = steer["event"]
    if event is not None and "event_id" in (case.path_parameters or {}):
        case.path_parameters = {**case.path_parameters, "event_id": event}
    if steer["track"] and isinstance(case.body, dict) and "track_id" in case.body:
        case.body = {**case.body, "track_id": api.tracks[steer["index"] % len(api.tracks)]}
    if steer["role"] is None:
        return {}
    return {"Authorization": f"Bearer {api.keys[event or 'ev-full', steer['role']]}"}


@SCHEMA.parametrize()
@SCHEMA.given(steer=STEER)
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_every_generated_request_gets_a_documented_response(case: Any, steer: dict[str, Any],
                                                            api: Api) -> None:
    headers = _steer(case, api, steer)
    response = case.call_and_validate(headers=headers, timeout=STREAM_SECONDS)
    assert response.status_code < 500


#: (method, path, event, role, body or None, the status a valid request gets); "{track}"
#: is a catalogue track, "{artist}" its artist
KNOWN = [
    ("GET", "/v1/catalogue", None, "viewer", None, 200),
    ("GET", "/v1/events/{event_id}/state", "ev-full", "viewer", None, 200),
    ("GET", "/v1/events/{event_id}/privacy", "ev-partial", "artist", None, 200),
    ("GET", "/v1/events/{event_id}/controls", "ev-full", "artist", None, 200),
    ("POST", "/v1/events/{event_id}/controls/override", "ev-full", "artist",
     {"track_id": "{track}"}, 201),
    ("POST", "/v1/events/{event_id}/controls/override", "ev-partial", "artist",
     {"track_id": "{track}"}, 403),
    ("POST", "/v1/events/{event_id}/controls/veto", "ev-partial", "artist",
     {"track_id": "{track}"}, 201),
    ("POST", "/v1/events/{event_id}/controls/veto", "ev-full", "artist",
     {"artist": "{artist}"}, 201),
    ("POST", "/v1/events/{event_id}/controls/veto", "ev-none", "artist",
     {"artist": "{artist}"}, 403),
    ("POST", "/v1/events/{event_id}/controls/pin", "ev-partial", "artist",
     {"track_id": "{track}"}, 201),
    ("GET", "/v1/events/{event_id}/stream", "ev-full", "viewer", None, 200),
    ("GET", "/v1/events/{event_id}/features", "ev-scorers", "scorer", None, 200),
    ("GET", "/v1/events/{event_id}/features/stream", "ev-scorers", "scorer", None, 200),
    ("GET", "/v1/events/{event_id}/features/stream", "ev-none", "scorer", None, 403),
    ("GET", "/v1/events/{event_id}/raw_audio", "ev-scorers", "scorer", None, 403),
]


def _fill(body: Any, api: Api) -> Any:
    if body is None:
        return NOT_SET
    return {k: {"{track}": api.tracks[-1], "{artist}": api.artist}.get(v, v)
            for k, v in body.items()}


@pytest.mark.parametrize(("method", "path", "event", "role", "body", "status"), KNOWN,
                         ids=[f"{m} {p.rsplit('/', 1)[-1]} {e} {s}"
                              for m, p, e, _, _, s in KNOWN])
def test_valid_requests_get_their_documented_answer(api: Api, method: str, path: str,
                                                    event: str | None, role: str,
                                                    body: Any, status: int) -> None:
    """Requests with a real key for a real event: past the key check, still as documented
    (for a 2xx, schemathesis also asks again without the key and with a bad one: 401)."""
    operation = SCHEMA[path][method]
    case = operation.Case(path_parameters={"event_id": event} if event else None,
                          body=_fill(body, api))
    key = api.keys[event or "ev-full", role]
    response = case.call_and_validate(headers={"Authorization": f"Bearer {key}"},
                                      timeout=STREAM_SECONDS)
    assert response.status_code == status, response.text


def test_scores_for_the_feed_are_taken_as_documented(api: Api) -> None:
    key = {"Authorization": f"Bearer {api.keys['ev-scorers', 'scorer']}"}
    path = {"event_id": "ev-scorers"}
    feed = SCHEMA["/v1/events/{event_id}/features"]["GET"].Case(path_parameters=path)
    windows = feed.call_and_validate(headers=key).json()["windows"]
    assert windows, "the scorer event has committed windows"
    scores = [{"window": w["window"], "subject": w["subject"], "score": 55.5}
              for w in windows[:3]]
    post = SCHEMA["/v1/events/{event_id}/scores"]["POST"].Case(path_parameters=path,
                                                               body={"scores": scores})
    response = post.call_and_validate(headers=key)
    assert response.status_code == 201 and response.json() == {"stored": len(scores)}


def test_a_veto_that_would_leave_no_track_is_refused_as_documented(api: Api) -> None:
    """Vetoing every artist would leave the selector only vetoed tracks to pick from: the
    last such veto is refused (409), and stored and listed as refused."""
    key = {"Authorization": f"Bearer {api.keys['ev-full', 'artist']}"}
    path = {"event_id": "ev-full"}
    veto = SCHEMA["/v1/events/{event_id}/controls/veto"]["POST"]
    *others, last = api.artists
    for name in others:
        answer = veto.Case(path_parameters=path, body={"artist": name}).call_and_validate(
            headers=key)
        assert answer.status_code == 201, answer.text
    refused = veto.Case(path_parameters=path, body={"artist": last}).call_and_validate(
        headers=key)
    assert refused.status_code == 409, refused.text
    body = refused.json()
    assert body["error"]["code"] == "veto_leaves_no_track"
    assert body["control"]["status"] == "refused"
    listed = SCHEMA["/v1/events/{event_id}/controls"]["GET"].Case(
        path_parameters=path).call_and_validate(headers=key).json()["controls"]
    assert [c for c in listed if c["id"] == body["control"]["id"]][0]["reason"] == \
        "veto_leaves_no_track"
    # one track of that artist can still go: the others remain
    track = next(t for t in api.catalogue if t["artist"] == last)
    taken = veto.Case(path_parameters=path, body={"track_id": track["id"]}).call_and_validate(
        headers=key)
    assert taken.status_code == 201, taken.text


@pytest.fixture(scope="module")
def replay_app(api: Api) -> Iterator[Any]:
    """A second console over the same home, replaying ev-full (read-only)."""
    app = create_app(api.home.settings, replay=Replay("ev-full", speed=1000.0),
                     poll_interval=0.05, keepalive=0.2)
    with TestClient(app):
        yield app


REPLAYED = [
    ("GET", "/v1/events/{event_id}/state", "viewer", None, 200),
    ("GET", "/v1/events/{event_id}/controls", "artist", None, 200),
    ("GET", "/v1/events/{event_id}/stream", "viewer", None, 200),
    ("POST", "/v1/events/{event_id}/controls/override", "artist", {"track_id": "{track}"}, 409),
    ("POST", "/v1/events/{event_id}/controls/veto", "artist", {"track_id": "{track}"}, 409),
    ("POST", "/v1/events/{event_id}/controls/pin", "artist", {"track_id": "{track}"}, 409),
]


@pytest.mark.parametrize(("method", "path", "role", "body", "status"), REPLAYED,
                         ids=[f"{m} {p.rsplit('/', 1)[-1]} {s}" for m, p, _, _, s in REPLAYED])
def test_a_replay_answers_as_documented_and_takes_no_control(
        api: Api, replay_app: Any, method: str, path: str, role: str, body: Any,
        status: int) -> None:
    live, TARGET.app = TARGET.app, replay_app
    try:
        case = SCHEMA[path][method].Case(path_parameters={"event_id": "ev-full"},
                                         body=_fill(body, api))
        key = api.keys["ev-full", role]
        response = case.call_and_validate(headers={"Authorization": f"Bearer {key}"},
                                          timeout=STREAM_SECONDS)
    finally:
        TARGET.app = live
    assert response.status_code == status, response.text
    if status == 409:
        assert response.json()["error"]["code"] == "replay_read_only"
