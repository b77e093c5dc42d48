"""The checked-in API documents: generated from the code byte for byte, complete, and their
references resolve (no app, no store: the documents are what :mod:`flowaudit.console.documents`
writes, and what CI holds the code to)."""

from __future__ import annotations

import ast
import difflib
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.routing import APIRoute
from jsonschema import Draft202012Validator

from flowaudit.console import feature_stream, stream
from flowaudit.console.app import build_app
from flowaudit.console.documents import (
    ASYNCAPI_FILE,
    FEATURE_MESSAGES,
    FEATURE_STREAM_PATH,
    MESSAGES,
    OPENAPI_FILE,
    STREAM_PATH,
    asyncapi_text,
    openapi_text,
)
from tests.console.console_fixtures import TestClient

FIX = "run `flowaudit console docs --write` and commit the documents"


def _openapi() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(OPENAPI_FILE.read_text(encoding="utf-8"))
    return doc


def _asyncapi() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(ASYNCAPI_FILE.read_text(encoding="utf-8"))
    return doc


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    """The node a local ``#/a/b`` reference names (KeyError: it names nothing)."""
    assert ref.startswith("#/"), f"{ref!r} is not a reference inside the document"
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def _deref(doc: dict[str, Any], ref: str) -> Any:
    """Like :func:`_resolve`, following a reference that names another reference."""
    node = _resolve(doc, ref)
    while isinstance(node, dict) and set(node) == {"$ref"}:
        node = _resolve(doc, node["$ref"])
    return node


def _refs(node: Any) -> list[str]:
    """Every ``$ref`` anywhere under ``node``."""
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _emitted_kinds(module: Any = stream) -> set[str]:
    """The ``event:`` names ``module`` (:mod:`flowaudit.console.stream`, or the feature
    stream's) sends: each ``frame("kind", ...)`` call in its source."""
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    kinds = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id == "frame" and node.args):
            first = node.args[0]
            assert isinstance(first, ast.Constant) and isinstance(first.value, str), (
                f"{Path(module.__file__).name} line {node.lineno}: a frame's kind is not a literal; this test "
                "reads the kinds from the source")
            kinds.add(first.value)
    return kinds


# -- in step with the code ------------------------------------------------------------------
@pytest.mark.parametrize(("path", "generate"), [(OPENAPI_FILE, openapi_text),
                                                (ASYNCAPI_FILE, asyncapi_text)],
                         ids=["openapi.json", "asyncapi.yaml"])
def test_the_checked_in_document_is_what_the_code_generates(path: Path, generate: Any) -> None:
    text: str = generate()
    on_disk = path.read_bytes()
    if on_disk != text.encode("utf-8"):
        diff = "".join(difflib.unified_diff(
            on_disk.decode("utf-8", "replace").splitlines(True), text.splitlines(True),
            str(path), "generated", n=2))
        pytest.fail(f"{path.name} drifted from the code; {FIX}\n{diff[:4000]}")


# -- OpenAPI ----------------------------------------------------------------------------------
def test_openapi_is_3_1_and_has_every_v1_route_of_the_app() -> None:
    doc = _openapi()
    assert re.fullmatch(r"3\.1\.\d+", doc["openapi"]), doc["openapi"]
    routes = {(r.path, m.lower()) for r in build_app(None).routes
              if isinstance(r, APIRoute) and r.path.startswith("/v1/") for m in r.methods}
    assert len(routes) >= 11
    documented = {(p, m) for p, ops in doc["paths"].items() for m in ops}
    assert routes - documented == set(), f"routes missing from openapi.json; {FIX}"
    assert documented - routes == set(), f"openapi.json names routes the app lacks; {FIX}"


def test_the_app_serves_the_checked_in_openapi_document() -> None:
    with TestClient(build_app(None)) as client:
        served = client.get("/v1/openapi.json")
    assert served.status_code == 200
    assert served.json() == _openapi(), f"/v1/openapi.json is not openapi.json; {FIX}"


def test_openapi_documents_the_error_body_for_every_refusal_and_resolves() -> None:
    doc = _openapi()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op.get("security"), f"{method} {path} declares no key"
            for status, response in op["responses"].items():
                if status.startswith(("4", "5")):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (
                        f"{method} {path} {status}: not the API's error body")
    for ref in _refs(doc):
        _resolve(doc, ref)
    for schema in doc["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize(("path", "messages", "module"), [
    (STREAM_PATH, MESSAGES, stream), (FEATURE_STREAM_PATH, FEATURE_MESSAGES, feature_stream)],
    ids=["stream", "features/stream"])
def test_openapi_describes_each_stream_event_with_its_payload(
        path: str, messages: dict[str, Any], module: Any) -> None:
    doc = _openapi()
    ok = doc["paths"][path]["get"]["responses"]["200"]["content"]["text/event-stream"]
    kinds = {}
    for branch in ok["schema"]["oneOf"]:
        data = branch["properties"]["data"]
        kinds[branch["properties"]["event"]["const"]] = _resolve(doc, data["contentSchema"]
                                                                 ["$ref"])
    assert set(kinds) == set(messages) == _emitted_kinds(module)
    for name, model in messages.items():
        assert kinds[name]["title"] == model.__name__


# -- AsyncAPI ---------------------------------------------------------------------------------
def test_asyncapi_structure() -> None:
    doc = _asyncapi()
    assert re.fullmatch(r"3\.0\.\d+", doc["asyncapi"]), doc["asyncapi"]
    assert doc["info"]["title"] and doc["info"]["version"] == _openapi()["info"]["version"]
    assert {"eventStream", "featureFeed", "featureStream"} <= set(doc["channels"])
    assert doc["channels"]["eventStream"]["address"] == STREAM_PATH
    assert doc["channels"]["featureStream"]["address"] == FEATURE_STREAM_PATH
    assert doc["operations"], "no operations"
    for name, op in doc["operations"].items():
        assert op["action"] in ("send", "receive"), name
        channel = _resolve(doc, op["channel"]["$ref"])
        assert op["messages"], name
        for message in op["messages"]:
            # an operation's messages are the channel's own
            assert message["$ref"].startswith(op["channel"]["$ref"] + "/messages/"), name
            assert _resolve(doc, message["$ref"]) in channel["messages"].values()


def test_every_asyncapi_reference_and_payload_resolves_to_a_valid_schema() -> None:
    doc = _asyncapi()
    refs = _refs(doc)
    assert refs
    for ref in refs:
        _resolve(doc, ref)
    messages = doc["components"]["messages"]
    assert messages
    for name, message in messages.items():
        payload = _resolve(doc, message["payload"]["$ref"])
        assert payload.get("type") == "object", name
        Draft202012Validator.check_schema(payload)
        # the payload's own references resolve in the document too
        for ref in _refs(payload):
            _resolve(doc, ref)


def test_every_stream_event_kind_has_a_message_and_every_message_is_sent() -> None:
    doc = _asyncapi()
    emitted = _emitted_kinds()
    assert {"sentiment", "decision", "adaptive_flow", "privacy", "control"} <= emitted
    channel = {_deref(doc, m["$ref"])["name"]
               for m in doc["channels"]["eventStream"]["messages"].values()}
    operation = {_deref(doc, m["$ref"])["name"]
                 for m in doc["operations"]["receiveEventStream"]["messages"]}
    assert set(MESSAGES) == emitted, (
        f"stream.py sends {sorted(emitted)}, flowaudit.console.documents.MESSAGES describes "
        f"{sorted(MESSAGES)}: give each kind a payload model there")
    assert channel == operation == emitted, (
        f"stream.py sends {sorted(emitted)}, asyncapi.yaml has {sorted(channel)}; {FIX}")


def test_every_feature_stream_kind_has_a_message_and_every_message_is_sent() -> None:
    doc = _asyncapi()
    emitted = _emitted_kinds(feature_stream)
    assert emitted == {"features"}
    channel = {_deref(doc, m["$ref"])["name"]
               for m in doc["channels"]["featureStream"]["messages"].values()}
    operation = {_deref(doc, m["$ref"])["name"]
                 for m in doc["operations"]["receiveFeatureStream"]["messages"]}
    assert set(FEATURE_MESSAGES) == emitted, (
        f"feature_stream.py sends {sorted(emitted)}, flowaudit.console.documents."
        f"FEATURE_MESSAGES describes {sorted(FEATURE_MESSAGES)}: give each kind a model there")
    assert channel == operation == emitted, (
        f"feature_stream.py sends {sorted(emitted)}, asyncapi.yaml has {sorted(channel)}; {FIX}")
    # the pushed window is the polled page's window: one schema for both
    page = _deref(doc, doc["components"]["messages"]["feature_page"]["payload"]["$ref"])
    pushed = doc["components"]["messages"]["features"]["payload"]["$ref"]
    assert page["properties"]["windows"]["items"]["$ref"] == pushed
