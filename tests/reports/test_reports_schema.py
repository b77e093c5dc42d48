"""JSON reports validate against the schemas shipped in the package; broken ones do not."""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from audit.reports import ReportContext, build_report, kind_ids, render, schema_for

from .conftest import Built

STORE_KINDS = ("gdpr", "retention", "dpia", "dsa", "ai-act")


def _validate(kind: str, document: dict[str, Any]) -> None:
    Draft202012Validator(schema_for(kind)).validate(document)


@pytest.mark.parametrize("kind", kind_ids())
def test_schema_is_shipped_and_valid(kind: str) -> None:
    path = resources.files("audit.reports").joinpath("schemas", f"{kind}.json")
    schema = json.loads(path.read_text("utf-8"))
    Draft202012Validator.check_schema(schema)
    assert schema["$id"] == f"flowaudit/report/{kind}/v1"
    assert schema["properties"]["report"] == {"const": kind}


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_json_report_validates(kind: str, built: Built) -> None:
    ctx = ReportContext.open(built.runtime, now=built.now, event_id=built.event_id)
    document = json.loads(render(build_report(kind, ctx), "json"))
    _validate(kind, document)
    assert document["schema"] == f"flowaudit/report/{kind}/v1"


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_scene_json_report_validates(kind: str, scene: Built) -> None:
    """The same on the store-API scene, SQLite and PostgreSQL."""
    ctx = ReportContext.open(scene.runtime, now=scene.now, event_id=scene.event_id)
    _validate(kind, json.loads(render(build_report(kind, ctx), "json")))


@pytest.fixture(scope="module")
def gdpr_doc(pipeline_stores: dict[str, Built]) -> dict[str, Any]:
    b = pipeline_stores["spotify-2026"]
    ctx = ReportContext.open(b.runtime, now=b.now, event_id=b.event_id)
    return json.loads(render(build_report("gdpr", ctx), "json"))


@pytest.mark.parametrize(
    "path, value",
    [
        (("data", "ropa", "b_purposes"), []),  # invalid: Art 30(1)(b) empty
        (("data", "ropa", "e_transfers"), ""),  # invalid: Art 30(1)(e) empty
        (("data", "ropa", "a_controller", "name"), ""),
        (("data", "population", "wristbands"), -1),  # invalid: a negative count
        (("data", "retention", "categories"), []),
        (("meta", "content_sha256"), "not-a-hash"),
        (("report",), "dpia"),  # invalid: wrong kind for this schema
    ],
)
def test_broken_documents_fail_validation(
    gdpr_doc: dict[str, Any], path: tuple[str, ...], value: Any
) -> None:
    _validate("gdpr", gdpr_doc)  # valid as generated
    broken = copy.deepcopy(gdpr_doc)
    target = broken
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ValidationError):
        _validate("gdpr", broken)


def test_missing_art30_field_fails_validation(gdpr_doc: dict[str, Any]) -> None:
    for field in list(gdpr_doc["data"]["ropa"]):
        broken = copy.deepcopy(gdpr_doc)
        del broken["data"]["ropa"][field]
        with pytest.raises(ValidationError):
            _validate("gdpr", broken)


def test_content_hash_covers_the_data(gdpr_doc: dict[str, Any]) -> None:
    import hashlib

    canonical = json.dumps(gdpr_doc["data"], sort_keys=True, separators=(",", ":"))
    assert hashlib.sha256(canonical.encode()).hexdigest() == gdpr_doc["meta"]["content_sha256"]
