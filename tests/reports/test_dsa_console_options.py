"""The DSA Art 27 report's options are the DJ console's controls (issue 12), on SQLite and
PostgreSQL: controls posted through the real app (starlette TestClient) to live events under
artist_control none / partial / full, one override applied by the real crowd step, and an
event nobody used the console for; the report's counts are the posted ones."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from audit.reports import ReportContext, build_report, render, schema_for
from flowaudit.console import keys as console_keys
from flowaudit.console.app import create_app
from flowaudit.runtime import open_runtime
from retention.ground.console_rules import CONTROL_KINDS, refusal_for
from tests.console.console_fixtures import Home, TestClient, console_home, decisions

EVENTS = {"ev-none": "spotify-2026", "ev-partial": "apple-music-2025",
          "ev-full": "privacy-by-default", "ev-quiet": "apple-music-2025"}


@dataclass
class Posted:
    """What the test sent, per event: keys by role, and each control's kind and HTTP status."""

    keys: dict[str, Counter[str]] = field(default_factory=dict)
    controls: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    def key(self, home: Home, event_id: str, role: str, label: str) -> str:
        self.keys.setdefault(event_id, Counter())[role] += 1
        return home.key(event_id, role, label)

    def count(self, event_id: str, kind: str, outcome: str) -> int:
        codes = {"accepted": (201,), "refused": (403, 404, 409)}[outcome]
        return sum(1 for k, s in self.controls.get(event_id, []) if k == kind and s in codes)


@dataclass
class Scene:
    home: Home
    posted: Posted
    reports: dict[str, Any]


def _post(client: TestClient, posted: Posted, key: str, event_id: str, kind: str,
          body: dict[str, str], expect: int | tuple[int, ...]) -> int:
    r = client.post(f"/v1/events/{event_id}/controls/{kind}",
                    headers={"Authorization": f"Bearer {key}"}, json=body)
    assert r.status_code in (expect if isinstance(expect, tuple) else (expect,)), r.text
    posted.controls.setdefault(event_id, []).append((kind, r.status_code))
    return r.status_code


def _unplayed(home: Home, client: TestClient, key: str, event_id: str, n: int) -> list[str]:
    played = {d.track_id for d in decisions(home.settings, event_id)}
    tracks = client.get("/v1/catalogue", headers={"Authorization": f"Bearer {key}"}).json()
    return [t["id"] for t in reversed(tracks["tracks"]) if t["id"] not in played][:n]


def _use_console(home: Home, client: TestClient) -> Posted:
    p = Posted()
    key = p.key(home, "ev-none", "artist", "booth none")
    p.key(home, "ev-none", "viewer", "screen none")
    (track,) = _unplayed(home, client, key, "ev-none", 1)
    for kind in CONTROL_KINDS:
        _post(client, p, key, "ev-none", kind, {"track_id": track}, 403)

    key = p.key(home, "ev-partial", "artist", "booth partial")
    p.key(home, "ev-partial", "viewer", "screen partial")
    a, b, c = _unplayed(home, client, key, "ev-partial", 3)
    _post(client, p, key, "ev-partial", "override", {"track_id": a}, 403)
    _post(client, p, key, "ev-partial", "pin", {"track_id": a}, 201)
    _post(client, p, key, "ev-partial", "pin", {"track_id": b}, 201)
    _post(client, p, key, "ev-partial", "veto", {"track_id": c}, 201)
    _post(client, p, key, "ev-partial", "pin", {"track_id": "T9999"}, 404)
    _post(client, p, key, "ev-partial", "override", {"track_id": b}, 403)

    key = p.key(home, "ev-full", "artist", "booth full")
    p.key(home, "ev-full", "scorer", "scorer full")
    a, b = _unplayed(home, client, key, "ev-full", 2)
    before = max((d.id for d in decisions(home.settings, "ev-full")), default=0)
    _post(client, p, key, "ev-full", "override", {"track_id": a}, 201)
    _post(client, p, key, "ev-full", "veto", {"track_id": b}, 201)
    _post(client, p, key, "ev-full", "pin", {"track_id": b}, 201)
    _post(client, p, key, "ev-full", "veto", {"artist": "Nobody Of That Name"}, 404)
    # the real crowd step takes the override at its next decision and marks it applied at
    # the decision after that
    for _ in range(40):
        later = [d for d in decisions(home.settings, "ev-full") if d.id > before]
        if len(later) >= 2:
            break
        home.advance("ev-full")
    assert later[0].artist_override and later[0].track_id == a
    # veto artist after artist: the veto that would leave no track to play is refused (409)
    tracks = client.get("/v1/catalogue", headers={"Authorization": f"Bearer {key}"}).json()
    for name in sorted({t["artist"] for t in tracks["tracks"]}):
        if _post(client, p, key, "ev-full", "veto", {"artist": name}, (201, 409)) == 409:
            break
    assert p.controls["ev-full"][-1] == ("veto", 409)
    return p


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres",
                                                               marks=pytest.mark.postgres)])
def scene(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
          pg_available: bool) -> Iterator[Scene]:
    tmp = tmp_path_factory.mktemp(f"dsa-console-{request.param}")
    with console_home(tmp, str(request.param), pg_available, events=EVENTS, warm=4) as home:
        with TestClient(create_app(home.settings)) as client:
            posted = _use_console(home, client)
        now = datetime.now(UTC)
        runtime = open_runtime(home.settings, now)
        try:
            reports = {}
            for eid in EVENTS:
                ctx = ReportContext.open(runtime, now=now, event_id=eid)
                reports[eid] = build_report("dsa", ctx)
            yield Scene(home, posted, reports)
        finally:
            runtime.close()


def _console(scene: Scene, event_id: str) -> dict[str, Any]:
    return dict(scene.reports[event_id].data["options"]["console"])


def _options_md(scene: Scene, event_id: str) -> str:
    text = render(scene.reports[event_id], "md")
    start = text.index(". Options to modify or influence the selection\n")
    return text[start:text.index(". Decision statistics\n", start)]


@pytest.mark.parametrize("event_id, available", [
    ("ev-none", []), ("ev-partial", ["veto", "pin"]), ("ev-full", ["override", "veto", "pin"]),
    ("ev-quiet", ["veto", "pin"])])
def test_options_list_the_controls_the_policy_allows(scene: Scene, event_id: str,
                                                     available: list[str]) -> None:
    console = _console(scene, event_id)
    assert console["available"] == available
    assert [c["kind"] for c in console["controls"]] == list(CONTROL_KINDS)
    md = _options_md(scene, event_id)
    for c in console["controls"]:
        assert c["available"] is (c["kind"] in available)
        assert c["roles"] == ["artist"] and c["effect"] and c["limits"]
        row = next(line for line in md.splitlines() if line.startswith(f"| {c['kind']} |"))
        assert ("| yes |" in row) is c["available"]
        assert c["effect"] in row and "artist key" in row
        if not c["available"]:
            code, message = refusal_for(console["artist_control"], c["kind"])
            assert c["refusal"] == {"code": code, "message": message}
            assert code in row and message in md
        else:
            assert c["refusal"] is None


def test_none_gives_the_refusal_reason(scene: Scene) -> None:
    console = _console(scene, "ev-none")
    assert {c["refusal"]["code"] for c in console["controls"]} == {"artist_control_none"}
    md = _options_md(scene, "ev-none")
    assert "the selector alone decides; overrides, vetoes and pins are refused" in md
    statement = render(scene.reports["ev-none"], "md").split(". Statement for the terms and conditions\n")[1]
    assert "refuses every control for this event" in statement


@pytest.mark.parametrize("event_id", ["ev-none", "ev-partial", "ev-full"])
def test_counts_are_the_posted_controls(scene: Scene, event_id: str) -> None:
    console = _console(scene, event_id)
    posted = scene.posted
    assert console["used"] is True
    for c in console["controls"]:
        assert c["accepted"] == posted.count(event_id, c["kind"], "accepted")
        assert c["refused"] == posted.count(event_id, c["kind"], "refused")
    assert console["controls_asked"] == len(posted.controls[event_id])
    assert console["keys"]["issued"] == sum(posted.keys[event_id].values())
    assert console["keys"]["by_role"] == {r: posted.keys[event_id][r]
                                          for r in ("artist", "scorer", "viewer")}
    assert console["keys"]["rate_limits"] == [{"rate_per_second": console_keys.DEFAULT_RATE,
                                               "burst": console_keys.DEFAULT_BURST}]
    md = _options_md(scene, event_id)
    assert f"| **Controls accepted** | {console['accepted']} |" in md
    assert f"| **Keys issued for this event** | {console['keys']['issued']} (" in md


def test_refusals_by_reason_include_unknown_tracks(scene: Scene) -> None:
    assert _console(scene, "ev-none")["refused_by_reason"] == {"artist_control_none": 3}
    assert _console(scene, "ev-partial")["refused_by_reason"] == {
        "artist_control_partial": 2, "unknown_track": 1}
    assert _console(scene, "ev-full")["refused_by_reason"] == {
        "unknown_artist": 1, "veto_leaves_no_track": 1}


def test_applied_override_is_counted(scene: Scene) -> None:
    override = _console(scene, "ev-full")["controls"][0]
    assert (override["kind"], override["accepted"], override["applied"]) == ("override", 1, 1)
    stats = scene.reports["ev-full"].data["statistics"]
    assert stats["artist_overrides"] >= 1


def test_unused_console_still_lists_the_options(scene: Scene) -> None:
    console = _console(scene, "ev-quiet")
    assert console["used"] is False and console["keys"]["issued"] == 0
    assert console["controls_asked"] == 0 and console["refused_by_reason"] == {}
    md = _options_md(scene, "ev-quiet")
    assert "The console was not used for this event" in md
    assert "(veto and pin) were available to an artist key" in md
    assert "| **Console used for this event** | no |" in md


@pytest.mark.parametrize("event_id", list(EVENTS))
def test_json_validates_and_html_renders(scene: Scene, event_id: str) -> None:
    document = json.loads(render(scene.reports[event_id], "json"))
    Draft202012Validator(schema_for("dsa")).validate(document)
    html = render(scene.reports[event_id], "html")
    for kind in CONTROL_KINDS:
        assert f"<td>{kind}</td>" in html
