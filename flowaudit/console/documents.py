"""The API's two documents, generated from the code and checked into the repository.

``openapi.json`` (OpenAPI 3.1) is FastAPI's description of the /v1 routes; ``asyncapi.yaml``
(AsyncAPI 3.0) describes the streaming channels: the console's server-sent-events stream and
the scorer feature feed, polled and pushed. The message payload schemas are pydantic models
here, so the stream tests validate what the stream sends against the very schemas the
document carries. ``flowaudit console docs --write`` rewrites both; the tests fail with a
diff when the files drift from the code.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field

from .app import API_VERSION, Control, build_app
from .scorers import FEED_WINDOWS

__all__ = ["OPENAPI_FILE", "ASYNCAPI_FILE", "MESSAGES", "FEATURE_MESSAGES", "openapi_text",
           "asyncapi_text", "asyncapi_document", "drift", "write_documents"]

HERE = Path(__file__).resolve().parent
OPENAPI_FILE = HERE / "openapi.json"
ASYNCAPI_FILE = HERE / "asyncapi.yaml"
#: a stream event's ``id:``, the cursor W.D.C after it
CURSOR_PATTERN = r"^-?\d+\.\d+\.\d+$"
#: a feature stream event's ``id:``, the cursor after it: W.S@M (window, subject, row id
#: watermark), or W.S@M+W.S@L (W@M+W.S@L) while it sends windows committed late
FEATURE_CURSOR_PATTERN = r"^\d+(\.[0-9a-f]{24})?@\d+(\+\d+\.[0-9a-f]{24}@\d+)?$"
#: a feature page's ``next_cursor``: a feature stream event's id, ``-1@M`` before the first
#: window, or a bare window while a writer held the table after an ``after`` page
NEXT_CURSOR_PATTERN = r"^-?\d+(\.[0-9a-f]{24})?(@\d+(\+\d+\.[0-9a-f]{24}@\d+)?)?$"


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Sentiment(_Msg):
    """The crowd and zone sentiment of one crowd window (EMA, 0-100; null: nobody scored)."""

    window: int
    at: str
    sentiment: float | None
    zones: dict[str, float]
    wristbands: int


class DecisionMsg(_Msg):
    """A next-track decision with its explanation and main parameters (DSA Art 27)."""

    id: int
    at: str
    track_id: str
    title: str | None
    artist: str | None
    crowd_sentiment: float
    adaptive_flow: bool
    artist_override: bool
    explanation: str
    parameters: dict[str, Any]
    inputs: dict[str, Any]


class AdaptiveFlow(_Msg):
    """An Adaptive Flow trigger: the crowd fell below the threshold, a recovery pick."""

    at: str
    decision_id: int
    sentiment: float
    threshold: float | None
    track_id: str


class Stored(_Msg):
    category: str
    records: int | None
    retention: str | None
    next_expiry: str | None
    expires_in_seconds: float | None


class Wristbands(_Msg):
    registered: int
    consenting: int
    streaming: int


class Privacy(_Msg):
    """Wristbands consenting and streaming, frames dropped by reason, what is stored and when
    its next record expires."""

    wristbands: Wristbands
    drops: dict[str, int]
    stored: list[Stored]
    policy: str


class ControlMsg(Control):
    """An override, veto or pin: stored (accepted or refused) or applied by a decision."""

    model_config = ConfigDict(extra="forbid")

    decision_id: int | None = None


class FeatureWindow(_Msg):
    """One wristband window's features, under this key's own pseudonym of the wristband."""

    window: int
    start_at: str
    subject: str = Field(pattern=r"^[0-9a-f]{24}$")
    zone: str | None
    features: dict[str, float]
    frames: int


class FeaturePage(_Msg):
    """One page of the scorer feed; ask again with ``cursor=next_cursor`` (every window once,
    a late one too) or, as before, ``after=cursor`` (by window)."""

    cursor: int
    stepped: int
    windows: list[FeatureWindow]
    next_cursor: str = Field(pattern=NEXT_CURSOR_PATTERN)


#: SSE ``event:`` name -> payload model
MESSAGES: dict[str, type[BaseModel]] = {
    "sentiment": Sentiment, "decision": DecisionMsg, "adaptive_flow": AdaptiveFlow,
    "privacy": Privacy, "control": ControlMsg,
}


#: the scorer feature stream's ``event:`` names -> payload model
FEATURE_MESSAGES: dict[str, type[BaseModel]] = {"features": FeatureWindow}

STREAM_PATH = "/v1/events/{event_id}/stream"
FEATURE_STREAM_PATH = "/v1/events/{event_id}/features/stream"


def openapi_document() -> dict[str, Any]:
    doc = FastAPI.openapi(build_app(None))  # FastAPI's own: the app serves this function's
    doc["info"]["description"] = (
        "The /v1 API of the flowaudit DJ console. Every route takes `Authorization: Bearer "
        "<key>` (keys: `flowaudit console key issue`; roles artist, viewer, scorer). Errors "
        "are `{\"error\": {\"code\", \"message\"}}`. The stream's messages are described by "
        "the AsyncAPI document (asyncapi.yaml), and here event by event.")
    schemas = doc["components"]["schemas"]
    for path, messages, pattern in ((STREAM_PATH, MESSAGES, CURSOR_PATTERN),
                                    (FEATURE_STREAM_PATH, FEATURE_MESSAGES,
                                     FEATURE_CURSOR_PATTERN)):
        ok = doc["paths"][path]["get"]["responses"]["200"]
        ok["content"]["text/event-stream"]["schema"] = _stream_event_schema(
            schemas, messages, pattern)
    doc["components"]["schemas"] = dict(sorted(schemas.items()))
    return doc


def _stream_event_schema(schemas: dict[str, Any], messages: dict[str, type[BaseModel]],
                         pattern: str) -> dict[str, Any]:
    """One server-sent event (OpenAPI 3.1 has a text/event-stream schema describe each
    event): its ``event`` names the message, ``data`` is the message's JSON, ``id`` the
    cursor. The payload schemas join the document's components."""
    kinds = []
    for name, model in messages.items():
        schemas[model.__name__] = _schema(model, schemas)
        kinds.append({
            "type": "object", "required": ["event", "data"],
            "properties": {
                "event": {"const": name},
                "id": {"type": "string", "pattern": pattern},
                "data": {"type": "string", "contentMediaType": "application/json",
                         "contentSchema": {"$ref": f"#/components/schemas/{model.__name__}"}},
            }})
    return {"oneOf": kinds}


def _schema(model: type[BaseModel], defs: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        defs[name] = sub
    return schema


def _sse_message(name: str, model: type[Any], pattern: str, cursor: str) -> dict[str, Any]:
    """One server-sent event kind: its JSON payload and the cursor its ``id:`` carries."""
    return {
        "name": name, "title": name, "summary": (model.__doc__ or "").strip(),
        "contentType": "application/json",
        "payload": {"$ref": f"#/components/schemas/{model.__name__}"},
        "headers": {"type": "object", "properties": {
            "id": {"type": "string", "pattern": pattern, "description": cursor}}},
    }


def asyncapi_document() -> dict[str, Any]:
    defs: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for name, model in MESSAGES.items():
        defs[model.__name__] = _schema(model, defs)
        messages[name] = _sse_message(name, model, CURSOR_PATTERN,
                                      "the cursor after this event (W.D.C); send it back as "
                                      "Last-Event-ID to resume")
    defs["FeaturePage"] = _schema(FeaturePage, defs)
    messages["feature_page"] = {
        "name": "feature_page", "title": "feature page",
        "summary": (FeaturePage.__doc__ or "").strip(), "contentType": "application/json",
        "payload": {"$ref": "#/components/schemas/FeaturePage"}}
    for name, model in FEATURE_MESSAGES.items():
        defs[model.__name__] = _schema(model, defs)
        messages[name] = _sse_message(name, model, FEATURE_CURSOR_PATTERN,
                                      "the cursor after this window (W.S@M: window, subject "
                                      "and row-id watermark, or W.S@M+W.S@L while windows "
                                      "committed late are sent); send it back as "
                                      "Last-Event-ID to resume after it")
    stream_refs = {n: {"$ref": f"#/components/messages/{n}"} for n in MESSAGES}
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "flowaudit console streams", "version": API_VERSION,
                 "description": "The live channels of the flowaudit console: the multiplexed "
                                "server-sent-events stream of one event, and the gated, "
                                "pseudonymous feature feed third-party scorers poll or "
                                "follow as server-sent events."},
        "defaultContentType": "application/json",
        "servers": {"console": {"host": "127.0.0.1:8780", "protocol": "http",
                                "description": "`flowaudit console` (default --host/--port)",
                                "security": [{"$ref": "#/components/securitySchemes/key"}]}},
        "channels": {
            "eventStream": {
                "address": "/v1/events/{event_id}/stream",
                "title": "live stream of one event (text/event-stream)",
                "description": "One SSE stream per console: the `event:` field names the "
                               "message, `data:` is its JSON payload, `id:` the cursor; a "
                               "`: keep-alive` comment after 15 quiet seconds.",
                "parameters": {"event_id": {"description": "the event id"}},
                "messages": stream_refs,
            },
            "featureFeed": {
                "address": "/v1/events/{event_id}/features",
                "title": "scorer feature feed (polled with ?cursor=next_cursor)",
                "description": "Only for scorer keys, only where the policy sets "
                               "selection.third_party_scorers = true; never audio, never "
                               "serials, per-key pseudonyms. Polled with "
                               "`?cursor=next_cursor` (the stream's cursor: an event's id "
                               "W.S@M or W.S@M+W.S@L, or W.S, W; empty: the start), a page "
                               "holds the windows the stream would send next, each exactly "
                               "once: first any window committed late (after the cursor "
                               f"passed it), then up to {FEED_WINDOWS} windows in window and "
                               "subject order. Polled with `?after=cursor` (not both: 400 "
                               "bad_cursor), pages go by window as before and a window "
                               "committed late after the cursor passed it is not in a later "
                               "page; its next_cursor (C@M) lets a client switch.",
                "parameters": {"event_id": {"description": "the event id"}},
                "messages": {"feature_page": {"$ref": "#/components/messages/feature_page"}},
            },
            "featureStream": {
                "address": FEATURE_STREAM_PATH,
                "title": "scorer feature feed pushed (text/event-stream)",
                "description": "The feature feed as server-sent events, with the feed's "
                               "gating: one `features` event per feature window (the window "
                               "objects of feature_page), each exactly once, in window and "
                               "subject order, except that a window committed late (after "
                               "the stream passed it) comes when it is committed; `id:` the "
                               "cursor after it; Last-Event-ID (an id, a page's "
                               "next_cursor, an older W.S, or a feed cursor W) resumes after "
                               "it; a "
                               "`: keep-alive` comment after 15 quiet seconds; the stream "
                               "ends when the key is revoked.",
                "parameters": {"event_id": {"description": "the event id"}},
                "messages": {n: {"$ref": f"#/components/messages/{n}"}
                             for n in FEATURE_MESSAGES},
            },
        },
        "operations": {
            "receiveEventStream": {
                "action": "receive", "channel": {"$ref": "#/channels/eventStream"},
                "summary": "A console (artist or viewer key) follows the event.",
                "messages": [{"$ref": f"#/channels/eventStream/messages/{n}"}
                             for n in MESSAGES],
                "security": [{"$ref": "#/components/securitySchemes/key"}],
            },
            "receiveFeatures": {
                "action": "receive", "channel": {"$ref": "#/channels/featureFeed"},
                "summary": "A scorer key reads feature windows; scores go back by POST "
                           "/v1/events/{event_id}/scores (OpenAPI).",
                "messages": [{"$ref": "#/channels/featureFeed/messages/feature_page"}],
                "security": [{"$ref": "#/components/securitySchemes/key"}],
            },
            "receiveFeatureStream": {
                "action": "receive", "channel": {"$ref": "#/channels/featureStream"},
                "summary": "A scorer key follows the feature feed as it grows; scores go "
                           "back by POST /v1/events/{event_id}/scores (OpenAPI).",
                "messages": [{"$ref": f"#/channels/featureStream/messages/{n}"}
                             for n in FEATURE_MESSAGES],
                "security": [{"$ref": "#/components/securitySchemes/key"}],
            },
        },
        "components": {
            "schemas": dict(sorted(defs.items())),
            "messages": messages,
            "securitySchemes": {"key": {"type": "httpApiKey", "name": "Authorization",
                                        "in": "header",
                                        "description": "`Bearer <key>`"}},
        },
    }


def openapi_text() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=False, ensure_ascii=False) + "\n"


def asyncapi_text() -> str:
    return yaml.safe_dump(asyncapi_document(), sort_keys=False, allow_unicode=True, width=100)


def drift() -> list[str]:
    """Unified diffs of each checked-in document against the code's (empty: in step)."""
    out = []
    for path, text in ((OPENAPI_FILE, openapi_text()), (ASYNCAPI_FILE, asyncapi_text())):
        old = path.read_text(encoding="utf-8") if path.is_file() else ""
        if old != text:
            out.append("".join(difflib.unified_diff(
                old.splitlines(True), text.splitlines(True), str(path), "generated")))
    return out


def write_documents() -> list[Path]:
    OPENAPI_FILE.write_text(openapi_text(), encoding="utf-8")
    ASYNCAPI_FILE.write_text(asyncapi_text(), encoding="utf-8")
    return [OPENAPI_FILE, ASYNCAPI_FILE]
