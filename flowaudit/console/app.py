"""The console's FastAPI app over one data home: the /v1 API, the stream, the page.

:func:`create_app` opens the home's store once (the app's lifetime) and serves every event
stored in it; an event file given for an event supplies its catalogue (default: the demo
event's). With ``replay`` the app shows one stored event on a replay clock, read-only.

Every /v1 route takes ``Authorization: Bearer <key>``; the key's role must be one the route
allows, and the key must be for the event in the path. Errors are one JSON shape,
``{"error": {"code", "message"}}``; refusals are audited (``console.refused``, per reason and
key per minute), uses too (``console.key_use``, per key per minute; see
:mod:`flowaudit.console.limits`), every control and every raw-audio request at once.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from fastapi.security import HTTPBearer
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from audit.log.checkpoints import attach_signer, checkpoint_after_command
from flowaudit.config import Settings
from flowaudit.runtime import Runtime, open_runtime
from pipeline.catalogue import Catalogue, load_catalogue
from pipeline.event import EventSpec, default_event_file, load_event
from retention.errors import (
    ConfigError,
    FlowauditError,
    IntegrityError,
    NotFoundError,
    RetentionError,
    StoreError,
)
from retention.ground.actions import Action
from retention.ground.console_rules import CONTROL_ROLES, KEY_ROLES, READ_ROLES, SCORER_ROLES

from .controls import submit_control
from .feature_stream import (
    FEATURE_CURSOR,
    FeatureCursor,
    after_page,
    feature_page,
    feature_stream,
    parse_feature_cursor,
)
from .keys import ConsoleKeys, KeyInfo, KeyRefused
from .limits import MinuteTally, RateLimiter
from .reader import EventView, Reader
from .replay import Replay
from .scorers import store_scores
from .stream import EventStreamResponse, event_stream, parse_cursor

__all__ = ["create_app", "build_app", "Service", "ApiError", "SECURITY_HEADERS", "API_VERSION"]

API_VERSION = "1.0.0"
HERE = Path(__file__).resolve().parent
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
EVENT_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
TRACK_ID = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
#: a stream cursor W.D.C, or nothing (what :func:`~.stream.parse_cursor` takes)
CURSOR = r"^\s*(-?[0-9]{1,12}\.[0-9]{1,15}\.[0-9]{1,15})?\s*$"
READERS = READ_ROLES


class ApiError(Exception):
    """A refusal with its HTTP status, code and one-line message."""

    def __init__(self, status: int, code: str, message: str,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = dict(headers or {})


def _error(status: int, code: str, message: str,
           headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status,
                        headers=dict(headers or {}))


#: errors whose text is for the operator, not an API client: it may name a subject (by the
#: store's pseudonym), a serial or a record, which a third party must never learn
_OPERATOR_ONLY: tuple[tuple[type[FlowauditError], str], ...] = (
    (RetentionError, "that data is past its retention or its key was destroyed"),
    (NotFoundError, "no such record"),
    (IntegrityError, "a stored record failed its integrity check; the operator should run "
     "flowaudit audit verify"),
    (ConfigError, "the console's data home is misconfigured; the operator should check it"),
)


def public_message(exc: FlowauditError) -> str:
    """What an API client may read of one of our errors: the request's own fault in full, the
    store's internals as a fixed sentence."""
    for kind, sentence in _OPERATOR_ONLY:
        if isinstance(exc, kind):
            return sentence
    return str(exc).splitlines()[0][:300]


# -- request and response bodies -------------------------------------------------------------
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TrackBody(_Body):
    track_id: Annotated[str, Field(pattern=TRACK_ID, description="a catalogue track id")]


class VetoTrack(_Body):
    """Veto one track."""

    track_id: Annotated[str, Field(pattern=TRACK_ID, description="a catalogue track id")]


class VetoArtist(_Body):
    """Veto every track of one artist."""

    artist: Annotated[str, Field(min_length=1, max_length=200,
                                 description="an artist of the catalogue")]


#: a veto names a track or an artist, never both (two shapes, so the document says so)
VetoBody = VetoTrack | VetoArtist


class ScoreItem(_Body):
    window: Annotated[int, Field(ge=0, le=10_000_000)]
    subject: Annotated[str, Field(pattern=r"^[0-9a-f]{24}$",
                                  description="the subject as this key's feed names it")]
    score: Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]


class ScoresBody(_Body):
    scores: Annotated[list[ScoreItem], Field(min_length=1, max_length=500)]


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class Control(BaseModel):
    id: int
    kind: Literal["override", "veto", "pin"]
    track_id: str | None
    artist: str | None
    by: str
    role: str
    at: str
    status: Literal["accepted", "applied", "refused"]
    reason: str | None
    applied_at: str | None


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {400: "Bad request (a body that is not JSON, a bad cursor)",
            401: "No key, a bad key or a revoked key", 403: "Refused (role, event, policy)",
            404: "Unknown event, track or artist",
            409: "Read-only replay, or a veto that would leave no track to play",
            422: "A path, query, header or body the document does not allow",
            429: "Over the key's rate limit (Retry-After)", 503: "The store is unavailable"}
    return {c: {"model": ErrorBody, "description": text[c]} for c in codes}


AUTH_ERRORS = (401, 403, 404, 422, 429, 503)


# -- the service ------------------------------------------------------------------------------
@dataclass
class Service:
    """What the routes share: the store, the reader, the keys, the limits, the tallies."""

    runtime: Runtime
    reader: Reader
    keys: ConsoleKeys
    limiter: RateLimiter
    replay: Replay | None
    poll: float
    keepalive: float
    clock: Callable[[], float]
    uses: MinuteTally = field(default_factory=MinuteTally)
    refusals: MinuteTally = field(default_factory=MinuteTally)
    streams: int = 0
    _privacy: dict[str, tuple[float, dict[str, Any]]] = field(default_factory=dict)

    @property
    def store(self) -> Any:
        return self.runtime.store

    def horizon(self) -> datetime | None:
        return None if self.replay is None else self.replay.horizon()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def audit(self, action: Action, object_type: str, object_id: str,
              details: dict[str, Any]) -> None:
        with self.store.transaction(self.now(), actor="console") as tx:
            tx.audit(action, object_type, object_id, details)

    def refused(self, code: str, key: KeyInfo | None, route: str, *, each: bool = False
                ) -> None:
        """Audit a refusal: ``each`` at once, else the first per reason and key a minute."""
        name = f"{code}:{key.key_id if key else '-'}"
        previous = 0 if each else self.refusals.count(name, self.clock())
        if previous is None:
            return
        details: dict[str, Any] = {"reason": code, "route": route,
                                   "key": key.key_id if key else None,
                                   "label": key.label if key else None,
                                   "role": key.role if key else None}
        if not each:
            details["refusals_previous_minute"] = previous
        self.audit(Action.CONSOLE_REFUSED, "console_key", key.key_id if key else "-", details)

    def used(self, key: KeyInfo) -> None:
        previous = self.uses.count(key.key_id, self.clock())
        if previous is not None:
            self.audit(Action.CONSOLE_KEY_USE, "console_key", key.key_id,
                       {"event": key.event_id, "role": key.role, "label": key.label,
                        "minute": _minute(self.clock()),
                        "requests_previous_minute": previous})

    def privacy(self, event: EventView, horizon: datetime | None) -> dict[str, Any]:
        """The privacy panel, read at most once a second per event (shared by streams)."""
        cached = self._privacy.get(event.id)
        now = self.clock()
        if cached is None or now - cached[0] >= 1.0 or self.replay is not None:
            cached = (now, self.reader.privacy(event, horizon))
            self._privacy[event.id] = cached
        return cached[1]

    def close(self) -> None:
        """Write the last minute's tallies, sign what this process appended, close."""
        try:
            for tally, action in ((self.uses, Action.CONSOLE_KEY_USE),
                                  (self.refusals, Action.CONSOLE_REFUSED)):
                for name, (minute, count) in tally.drain().items():
                    self.audit(action, "console_key", name.split(":")[-1],
                               {"minute": _minute(minute * 60.0), "requests": count,
                                "final": True, "tally": name.split(":")[0]
                                if action is Action.CONSOLE_REFUSED else "use"})
            checkpoint_after_command(self.runtime, appended_only=True)
        finally:
            self.runtime.close()


def _minute(at: float) -> str:
    return datetime.fromtimestamp(at // 60 * 60, UTC).isoformat()


def _service(request: Request) -> Service:
    service: Service = request.app.state.service
    return service


bearer = HTTPBearer(auto_error=False, description="an API key: `flowaudit console key issue`")


def _route_name(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", "?"))


def authorize(request: Request, roles: Sequence[str], event_id: str | None
              ) -> tuple[KeyInfo, EventView | None]:
    """The request's key and event, or an :class:`ApiError` (refusals audited)."""
    service = _service(request)
    route = _route_name(request)
    try:
        key = service.keys.authenticate(request.headers.get("authorization"))
    except KeyRefused as refused:
        service.refused(refused.code, None, route)
        raise ApiError(401, refused.code, refused.message,
                       {"www-authenticate": "Bearer"}) from None
    wait = service.limiter.retry_after(key.key_id, key.rate_per_second, key.burst)
    if wait:
        service.refused("rate_limited", key, route)
        raise ApiError(429, "rate_limited",
                       f"over this key's rate limit ({key.rate_per_second:g} requests/s, "
                       f"burst {key.burst}); retry in {wait} s", {"retry-after": str(wait)})
    service.used(key)
    if key.role not in roles:
        service.refused("wrong_role", key, route)
        raise ApiError(403, "wrong_role", f"a {key.role} key may not use this endpoint; it "
                       f"needs a key of role {' or '.join(roles)}")
    if event_id is None:
        return key, None
    if key.event_id != event_id:
        service.refused("wrong_event", key, route)
        raise ApiError(403, "wrong_event", "this key is for another event; issue one with "
                       "`flowaudit console key issue --event <id>`")
    event = service.reader.event(event_id)
    if event is None:
        raise ApiError(404, "unknown_event", f"no event {event_id!r} in this home; the live "
                       "workers register it when they start")
    return key, event


EventIdParam = Annotated[str, PathParam(pattern=EVENT_ID, max_length=64,
                                         description="the event id")]


class SecurityHeaders:
    """Adds the console's security headers to every response (pure ASGI: streams untouched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                for name, value in SECURITY_HEADERS.items():
                    if name.encode() not in present:
                        headers.append((name.encode(), value.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _catalogues(event_files: Iterable[Path | str]) -> tuple[dict[str, Catalogue], list[EventSpec]]:
    specs = [load_event(p) for p in event_files]
    return {s.id: load_catalogue(s.catalogue) for s in specs}, specs


def create_app(settings: Settings, *, event_files: Iterable[Path | str] = (),
               catalogue: Path | str | None = None, replay: Replay | None = None,
               poll_interval: float = 0.25, keepalive: float = 15.0,
               clock: Callable[[], float] = time.time,
               environ: Mapping[str, str] | None = None) -> FastAPI:
    """The console app over the home ``settings`` names (module docstring).

    ``event_files``: event files whose catalogues their events use; ``catalogue``: the
    catalogue of any other event (default: the demo event's); ``replay``: review one stored
    event on a replay clock; ``poll_interval``: how often a stream reads the store."""
    catalogues, _ = _catalogues(event_files)
    default = load_catalogue(catalogue) if catalogue is not None else load_catalogue(
        load_event(default_event_file()).catalogue)
    runtime = open_runtime(settings, datetime.now(UTC), environ)
    attach_signer(runtime)
    reader = Reader(runtime.store, default, catalogues)
    if replay is not None:
        view = reader.event(replay.event_id)
        if view is None:
            runtime.close()
            raise NotFoundError(f"no event {replay.event_id!r} in this home to replay; "
                                "`flowaudit status` lists the stored events")
        first = reader.crowd_windows(replay.event_id, -1, None, limit=1)
        replay.start(datetime.fromisoformat(first[0]["at"]) if first else view.starts_at)
    service = Service(runtime, reader, ConsoleKeys(runtime.store), RateLimiter(clock),
                      replay, poll_interval, keepalive, clock)
    return build_app(service)


def build_app(service: Service | None) -> FastAPI:
    """The app's routes over ``service`` (``None``: only to write the OpenAPI document)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> Any:
        try:
            yield
        finally:
            if service is not None:
                service.close()

    app = FastAPI(
        title="flowaudit console API", version=API_VERSION, lifespan=lifespan,
        summary="Live sentiment, the next track and why, artist controls, privacy status, "
                "and the third-party scorer feed of a flowaudit live event.",
        openapi_url="/v1/openapi.json", docs_url=None, redoc_url=None,
    )
    app.state.service = service
    app.add_middleware(SecurityHeaders)
    _handlers(app)
    _routes(app)
    _page(app)

    def served_document() -> dict[str, Any]:
        """/v1/openapi.json serves the checked-in document's content, not FastAPI's draft."""
        if app.openapi_schema is None:
            from .documents import openapi_document  # documents imports this module

            app.openapi_schema = openapi_document()
        return app.openapi_schema

    app.openapi = served_document  # type: ignore[method-assign]
    return app


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "request"
        return _error(422, "invalid_request", f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # FastAPI's own 400 is a body it could not parse (not UTF-8, say)
        code = {400: "invalid_body", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, f"http_{exc.status_code}")
        message = {400: "the body could not be read; send JSON (UTF-8) as application/json",
                   404: "no such endpoint; the API is described at /v1/openapi.json",
                   405: "that method is not allowed here"}.get(exc.status_code,
                                                                str(exc.detail))
        return _error(exc.status_code, code, message)

    @app.exception_handler(StoreError)
    async def store_error(_: Request, exc: StoreError) -> JSONResponse:
        return _error(503, "store_unavailable", "the store is unavailable; try again")

    @app.exception_handler(FlowauditError)
    async def flowaudit_error(_: Request, exc: FlowauditError) -> JSONResponse:
        return _error(400, "refused", public_message(exc))


def _routes(app: FastAPI) -> None:  # noqa: C901 - one place lists every route
    auth = [Depends(bearer)]

    @app.get("/v1/catalogue", tags=["catalogue"], dependencies=auth,
             responses=_errors(401, 403, 429))
    def catalogue(request: Request) -> dict[str, Any]:
        """The tracks a control may name (any role)."""
        authorize(request, KEY_ROLES, None)
        cat = _service(request).reader.catalogue
        return {"tracks": [{"id": t.id, "title": t.title, "artist": t.artist,
                            "energy": t.energy, "valence": t.valence, "bpm": t.bpm,
                            "recovery": bool(t.recovery)} for t in cat.tracks]}

    @app.get("/v1/events/{event_id}/state", tags=["live"], dependencies=auth,
             responses=_errors(*AUTH_ERRORS))
    def state(request: Request, event_id: EventIdParam) -> dict[str, Any]:
        """The event, the last crowd window, the last decision, privacy, the controls."""
        _, event = authorize(request, READERS, event_id)
        assert event is not None
        service = _service(request)
        at = service.horizon()
        return {"event": event.as_json("replay" if service.replay else "live"),
                "crowd": service.reader.last_crowd(event.id, at),
                "decision": service.reader.last_decision(event.id, at),
                "privacy": service.privacy(event, at),
                "controls": service.reader.controls(event.id, horizon=at)}

    @app.get("/v1/events/{event_id}/privacy", tags=["live"], dependencies=auth,
             responses=_errors(*AUTH_ERRORS))
    def privacy(request: Request, event_id: EventIdParam) -> dict[str, Any]:
        """Wristbands consenting and streaming, drops by reason, what is stored and when it
        expires."""
        _, event = authorize(request, READERS, event_id)
        assert event is not None
        service = _service(request)
        return service.privacy(event, service.horizon())

    @app.get("/v1/events/{event_id}/controls", tags=["controls"], dependencies=auth,
             responses=_errors(*AUTH_ERRORS))
    def controls(request: Request, event_id: EventIdParam) -> dict[str, list[Control]]:
        """Every override, veto and pin asked for, accepted, applied or refused, with who."""
        _, event = authorize(request, READERS, event_id)
        assert event is not None
        service = _service(request)
        rows = service.reader.controls(event.id, horizon=service.horizon())
        return {"controls": [Control(**r) for r in rows]}

    def _control(request: Request, event_id: str, kind: str, track_id: str | None,
                 artist: str | None) -> JSONResponse:
        key, event = authorize(request, CONTROL_ROLES, event_id)
        assert event is not None
        service = _service(request)
        if service.replay is not None:
            service.refused("replay_read_only", key, _route_name(request), each=True)
            raise ApiError(409, "replay_read_only", "this console replays a stored event; "
                           "controls only apply to a live one")
        outcome = submit_control(service.store, service.reader, event, key, kind,
                                 track_id=track_id, artist=artist, now=service.now())
        if outcome.code is not None:
            body: dict[str, Any] = {"error": {"code": outcome.code, "message": outcome.message}}
            if outcome.control is not None:
                body["control"] = outcome.control
            return JSONResponse(body, status_code=outcome.status)
        return JSONResponse(outcome.control, status_code=201)

    control_responses = {201: {"model": Control, "description": "The control, accepted"},
                         **_errors(400, 401, 403, 404, 409, 422, 429, 503)}

    @app.post("/v1/events/{event_id}/controls/override", tags=["controls"], status_code=201,
              dependencies=auth, responses=control_responses, response_model=None)
    def override(request: Request, event_id: EventIdParam, body: TrackBody) -> JSONResponse:
        """Play this track at the next decision (artist_control = full only)."""
        return _control(request, event_id, "override", body.track_id, None)

    @app.post("/v1/events/{event_id}/controls/veto", tags=["controls"], status_code=201,
              dependencies=auth, responses=control_responses, response_model=None)
    def veto(request: Request, event_id: EventIdParam, body: VetoBody) -> JSONResponse:
        """Never play this track, or any track of this artist (partial or full)."""
        if isinstance(body, VetoTrack):
            return _control(request, event_id, "veto", body.track_id, None)
        return _control(request, event_id, "veto", None, body.artist)

    @app.post("/v1/events/{event_id}/controls/pin", tags=["controls"], status_code=201,
              dependencies=auth, responses=control_responses, response_model=None)
    def pin(request: Request, event_id: EventIdParam, body: TrackBody) -> JSONResponse:
        """Add this track to the pinned pool the picks come from (partial or full)."""
        return _control(request, event_id, "pin", body.track_id, None)

    @app.get("/v1/events/{event_id}/stream", tags=["live"], dependencies=auth,
             responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                              "description": "The multiplexed stream; see the AsyncAPI "
                                             "document (flowaudit/console/asyncapi.yaml)"},
                        **_errors(400, *AUTH_ERRORS)},
             response_class=StreamingResponse)
    async def stream(request: Request, event_id: EventIdParam,
                     last_event_id: Annotated[str, Header(
                         max_length=64, description="resume after this event (400 if it is "
                         "not a cursor)", json_schema_extra={"pattern": CURSOR})] = ""
                     ) -> StreamingResponse:
        """Server-sent events: sentiment, decision, adaptive_flow, privacy, control."""
        from starlette.concurrency import run_in_threadpool

        key, event = await run_in_threadpool(authorize, request, READERS, event_id)
        assert event is not None
        cursor = None
        if last_event_id.strip():
            cursor = parse_cursor(last_event_id)
            if cursor is None:
                raise ApiError(400, "bad_cursor", "Last-Event-ID is not a cursor of this "
                               "stream (W.D.C); reconnect without it")
        service = _service(request)
        return _sse(event_stream(service.reader, event, cursor, horizon=service.horizon,
                                 privacy=service.privacy, **_loop(request, service, key)))

    @app.get("/v1/events/{event_id}/features", tags=["scorers"], dependencies=auth,
             responses=_errors(400, *AUTH_ERRORS))
    def features(request: Request, event_id: EventIdParam,
                 after: Annotated[int, Query(ge=-1, le=10_000_000,
                                             description="the cursor of the last page (pages "
                                             "by window: a window committed late is not "
                                             "sent; use cursor)")] = -1,
                 cursor: Annotated[str | None, Query(
                     max_length=128, description="instead of after: the next_cursor of the "
                     "last page (or a stream event's id, W.S, W; empty: the feed's start); "
                     "every window once, a late one too (400 if it is not a cursor, or with "
                     "after)", json_schema_extra={"pattern": FEATURE_CURSOR})] = None,
                 include: Annotated[str | None, Query(max_length=40,
                                                      description="raw_audio is refused")]
                 = None) -> dict[str, Any]:
        """Pseudonymous feature windows for a scorer key (gated by the policy)."""
        key, event = authorize(request, SCORER_ROLES, event_id)
        assert event is not None
        service = _service(request)
        if include is not None and "audio" in include.lower():
            _raw_audio_refused(service, key, request)
        _require_scorers(service, key, request, event, "no feature feed")
        if cursor is None:
            return after_page(service.store, event, key, after, service.now(),
                              service.horizon())
        if "after" in request.query_params:
            raise ApiError(400, "bad_cursor", "send after or cursor, not both; cursor (the "
                           "last page's next_cursor) is the one that misses no window")
        at = parse_feature_cursor(cursor) if cursor.strip() else FeatureCursor(-1, None, 0)
        if at is None:
            raise ApiError(400, "bad_cursor", "cursor is not a cursor of this feed (a page's "
                           "next_cursor, a stream event's id, W.S, or W); start without it")
        return feature_page(service.store, event, key, at, service.now(), service.horizon())

    @app.get("/v1/events/{event_id}/features/stream", tags=["scorers"], dependencies=auth,
             responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                              "description": "The feature feed as server-sent events; see the "
                                             "AsyncAPI document (flowaudit/console/"
                                             "asyncapi.yaml)"},
                        **_errors(400, *AUTH_ERRORS)},
             response_class=StreamingResponse)
    async def features_stream(request: Request, event_id: EventIdParam,
                              last_event_id: Annotated[str, Header(
                                  max_length=128, description="resume after this event (its "
                                  "id, W.S@M or W.S@M+W.S@L), or after an older cursor W.S or "
                                  "window W of the feed (400 if it is none of these)",
                                  json_schema_extra={"pattern": FEATURE_CURSOR})] = ""
                              ) -> StreamingResponse:
        """Server-sent events: one features event per feature window, as the feed grows."""
        from starlette.concurrency import run_in_threadpool

        key, event = await run_in_threadpool(authorize, request, SCORER_ROLES, event_id)
        assert event is not None
        service = _service(request)
        await run_in_threadpool(_require_scorers, service, key, request, event,
                                "no feature feed")
        cursor = None
        if last_event_id.strip():
            cursor = parse_feature_cursor(last_event_id)
            if cursor is None:
                raise ApiError(400, "bad_cursor", "Last-Event-ID is not a cursor of this "
                               "stream (an event's id, W.S, or a feed cursor W); reconnect "
                               "without it")
        return _sse(feature_stream(service.store, event, key, cursor, now=service.now,
                                   horizon=service.horizon, **_loop(request, service, key)))

    @app.post("/v1/events/{event_id}/scores", tags=["scorers"], dependencies=auth,
              status_code=201, responses=_errors(400, *AUTH_ERRORS, 409))
    def scores(request: Request, event_id: EventIdParam, body: ScoresBody) -> dict[str, Any]:
        """Post scores (0-100) for windows and subjects of this key's feed."""
        key, event = authorize(request, SCORER_ROLES, event_id)
        assert event is not None
        service = _service(request)
        _require_scorers(service, key, request, event, "no scores are taken")
        if service.replay is not None:
            raise ApiError(409, "replay_read_only", "this console replays a stored event")
        posted = store_scores(service.store, event, key,
                              [(s.window, s.subject, s.score) for s in body.scores],
                              service.now())
        if posted.unknown:
            raise ApiError(404, "unknown_subject", f"score {posted.unknown[0]} names no "
                           "window and subject of this key's feed; nothing was stored")
        return {"stored": posted.stored}

    @app.get("/v1/events/{event_id}/raw_audio", tags=["scorers"], dependencies=auth,
             responses=_errors(*AUTH_ERRORS))
    def raw_audio(request: Request, event_id: EventIdParam) -> dict[str, Any]:
        """Always refused: raw audio is never served (the refusal is audited)."""
        key, _ = authorize(request, KEY_ROLES, event_id)
        _raw_audio_refused(_service(request), key, request)
        return {}


def _loop(request: Request, service: Service, key: KeyInfo) -> dict[str, Any]:
    """What every stream's polling loop (:func:`~.stream.sse_loop`) takes from the request and
    the service: the disconnect check, the poll and keep-alive intervals, the open count, and
    whether the stream's key is still unrevoked."""

    def opened() -> None:
        service.streams += 1

    def closed() -> None:
        service.streams -= 1

    return {"disconnected": request.is_disconnected, "poll": service.poll,
            "keepalive": service.keepalive, "sleep": asyncio.sleep, "on_open": opened,
            "on_close": closed, "key_live": lambda: service.keys.is_live(key.key_id)}


def _sse(body: AsyncIterator[bytes]) -> EventStreamResponse:
    return EventStreamResponse(body, media_type="text/event-stream",
                               headers={"cache-control": "no-store", "x-accel-buffering": "no"})


def _require_scorers(service: Service, key: KeyInfo, request: Request, event: EventView,
                     what: str) -> None:
    """Refuse (audited) a scorer route of an event whose policy allows no third-party scorers."""
    if not event.scorers_allowed:
        service.refused("third_party_scorers_off", key, _route_name(request))
        raise ApiError(403, "third_party_scorers_off", "the event's policy sets "
                       f"selection.third_party_scorers = false: {what}")


def _raw_audio_refused(service: Service, key: KeyInfo, request: Request) -> None:
    service.refused("raw_audio_never_served", key, _route_name(request), each=True)
    raise ApiError(403, "raw_audio_never_served", "raw audio is never served by this API; "
                   "the feature windows (/features) are what scorers get")


def _page(app: FastAPI) -> None:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    script = HERE / "static" / "console.js"
    integrity = None
    if script.is_file():
        digest = hashlib.sha384(script.read_bytes()).digest()
        integrity = "sha384-" + base64.b64encode(digest).decode("ascii")
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    @app.get("/console/{event_id}", include_in_schema=False, response_class=HTMLResponse)
    def console_page(request: Request, event_id: EventIdParam) -> Any:
        service = _service(request)
        event = service.reader.event(event_id)
        if event is None:
            return HTMLResponse(f"<!doctype html><title>Unknown event</title><p>No event "
                                f"{_escape(event_id)} in this home.</p>", status_code=404)
        return templates.TemplateResponse(request, "console.html", {
            "event_id": event.id, "event_name": event.name, "policy": event.policy_name,
            "artist_control": event.artist_control, "script_integrity": integrity})


def _escape(text: str) -> str:
    from html import escape

    return escape(text)
