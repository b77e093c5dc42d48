"""The /v1 API on a real store (SQLite and PostgreSQL): auth and abuse, the artist controls
under each artist_control mode, and what a stored control does to the real crowd step."""

from __future__ import annotations

from typing import Any

import pytest

from flowaudit.console.app import create_app
from retention.errors import InputError, IntegrityError, NotFoundError, RecordShreddedError
from tests.console.console_fixtures import (
    Home,
    TestClient,
    audit,
    bearer,
    client_fixture,
    decisions,
    error_of,
    home_fixture,
)

home = home_fixture("console-api")
client = client_fixture()


def refusals(home: Home) -> list[dict[str, Any]]:
    return [e.details for e in audit(home.settings, "console.refused")]


def next_decision(home: Home, event_id: str, after_id: int, windows: int = 15) -> Any:
    """Step the live event until the crowd step makes a decision after ``after_id``."""
    for _ in range(windows):
        home.advance(event_id)
        later = [d for d in decisions(home.settings, event_id) if d.id > after_id]
        if later:
            return later[0]
    raise AssertionError(f"no decision in {windows} windows of {event_id}")


def last_id(home: Home, event_id: str) -> int:
    rows = decisions(home.settings, event_id)
    return rows[-1].id if rows else 0


def unplayed(home: Home, client: TestClient, key: str, event_id: str) -> str:
    played = {d.track_id for d in decisions(home.settings, event_id)}
    tracks = client.get("/v1/catalogue", headers=bearer(key)).json()["tracks"]
    return next(t["id"] for t in reversed(tracks) if t["id"] not in played)


# -- auth and abuse ------------------------------------------------------------------------
def test_requests_without_a_valid_key_are_refused_and_audited(home: Home,
                                                               client: TestClient) -> None:
    url = "/v1/events/ev-full/state"
    assert client.get(url).status_code == 401
    assert error_of(client.get(url)) == "no_key"
    assert error_of(client.get(url, headers={"Authorization": "Basic abc"})) == "bad_key"
    assert error_of(client.get(url, headers=bearer("fak_" + "A" * 43))) == "bad_key"
    assert client.get(url, headers=bearer("fak_" + "A" * 43)).headers["www-authenticate"]
    key = home.key("ev-full", "viewer", "to revoke")
    assert client.get(url, headers=bearer(key)).status_code == 200
    from flowaudit.console.keys import ConsoleKeys
    from flowaudit.runtime import open_runtime

    runtime = open_runtime(home.settings, home.drivers["ev-full"].runtime.now)
    try:
        info = ConsoleKeys(runtime.store).authenticate(f"Bearer {key}")
        ConsoleKeys(runtime.store).revoke(info.key_id, runtime.now)
    finally:
        runtime.close()
    refused = client.get(url, headers=bearer(key))
    assert refused.status_code == 401 and error_of(refused) == "revoked_key"
    reasons = {(d["reason"], d["key"]) for d in refusals(home)}
    assert {("no_key", None), ("bad_key", None), ("revoked_key", None)} <= reasons
    revokes = audit(home.settings, "console.key_revoke")
    assert [e.object_id for e in revokes][-1] == info.key_id
    # no key material in the log: only ids, roles, labels
    assert not any(key in repr(e.details) for e in audit(home.settings, "console.key_issue"))


def test_wrong_role_and_wrong_event_are_refused(home: Home, client: TestClient) -> None:
    scorer = home.key("ev-full", "scorer")
    r = client.get("/v1/events/ev-full/state", headers=bearer(scorer))
    assert r.status_code == 403 and error_of(r) == "wrong_role"
    viewer = home.key("ev-full", "viewer")
    r = client.post("/v1/events/ev-full/controls/pin", headers=bearer(viewer),
                    json={"track_id": "T0001"})
    assert r.status_code == 403 and error_of(r) == "wrong_role"
    r = client.get("/v1/events/ev-none/state", headers=bearer(viewer))
    assert r.status_code == 403 and error_of(r) == "wrong_event"
    other = home.key("no-such-event", "viewer")
    r = client.get("/v1/events/no-such-event/state", headers=bearer(other))
    assert r.status_code == 404 and error_of(r) == "unknown_event"


def test_over_the_rate_limit_is_429_with_retry_after_and_audited(home: Home,
                                                                  client: TestClient) -> None:
    key = home.key("ev-full", "viewer", "slow", rate=0.1, burst=2)
    url = "/v1/events/ev-full/privacy"
    assert [client.get(url, headers=bearer(key)).status_code for _ in range(2)] == [200, 200]
    r = client.get(url, headers=bearer(key))
    assert r.status_code == 429 and error_of(r) == "rate_limited"
    assert 1 <= int(r.headers["retry-after"]) <= 10
    key_id = client.app.state.service.keys.authenticate(f"Bearer {key}").key_id  # type: ignore
    assert any(d["reason"] == "rate_limited" and d["key"] == key_id for d in refusals(home))
    uses = [e for e in audit(home.settings, "console.key_use") if e.object_id == key_id]
    assert len(uses) == 1 and uses[0].details["requests_previous_minute"] == 0


def test_raw_audio_is_never_served_and_the_request_is_audited(home: Home,
                                                              client: TestClient) -> None:
    key = home.key("ev-scorers", "scorer", "acme")
    before = len(refusals(home))
    for url in ("/v1/events/ev-scorers/raw_audio",
                "/v1/events/ev-scorers/features?include=raw_audio"):
        r = client.get(url, headers=bearer(key))
        assert r.status_code == 403 and error_of(r) == "raw_audio_never_served"
    new = refusals(home)[before:]
    assert [d["reason"] for d in new] == ["raw_audio_never_served"] * 2
    assert {d["label"] for d in new} == {"acme"} and {d["role"] for d in new} == {"scorer"}


def test_bad_bodies_are_clear_422s(home: Home, client: TestClient) -> None:
    key = home.key("ev-full", "artist")
    url = "/v1/events/ev-full/controls/override"
    for body in ({"track_id": "T0001", "note": "free text"}, {}, {"track_id": "../x"}):
        r = client.post(url, headers=bearer(key), json=body)
        assert r.status_code == 422 and error_of(r) == "invalid_request"
    r = client.post("/v1/events/ev-full/controls/veto", headers=bearer(key),
                    json={"track_id": "T0001", "artist": "X"})
    assert r.status_code == 422
    r = client.post(url, headers=bearer(key), json={"track_id": "T9999"})
    assert r.status_code == 404 and error_of(r) == "unknown_track"


# -- controls under each artist_control mode -------------------------------------------------
def test_none_refuses_every_control_with_its_reason(home: Home, client: TestClient) -> None:
    key = home.key("ev-none", "artist", "booth none")
    track = unplayed(home, client, key, "ev-none")
    for kind in ("override", "veto", "pin"):
        r = client.post(f"/v1/events/ev-none/controls/{kind}", headers=bearer(key),
                        json={"track_id": track})
        assert r.status_code == 403 and error_of(r) == "artist_control_none"
        assert "artist_control = none" in r.json()["error"]["message"]
        assert r.json()["control"]["status"] == "refused"
    stored = client.get("/v1/events/ev-none/controls", headers=bearer(key)).json()["controls"]
    assert [(c["kind"], c["status"], c["by"]) for c in stored][-3:] == [
        ("override", "refused", "booth none"), ("veto", "refused", "booth none"),
        ("pin", "refused", "booth none")]
    entries = [e.details for e in audit(home.settings, "console.control")
               if e.details.get("event") == "ev-none"]
    assert [(d["kind"], d["status"], d["reason"], d["label"]) for d in entries][-3:] == [
        (k, "refused", "artist_control_none", "booth none") for k in ("override", "veto", "pin")]
    decision = next_decision(home, "ev-none", last_id(home, "ev-none"))
    assert not decision.artist_override and decision.track_id != track


def test_partial_takes_pins_and_vetoes_and_refuses_overrides(home: Home,
                                                             client: TestClient) -> None:
    key = home.key("ev-partial", "artist", "booth partial")
    track = unplayed(home, client, key, "ev-partial")
    r = client.post("/v1/events/ev-partial/controls/override", headers=bearer(key),
                    json={"track_id": track})
    assert r.status_code == 403 and error_of(r) == "artist_control_partial"
    r = client.post("/v1/events/ev-partial/controls/pin", headers=bearer(key),
                    json={"track_id": track})
    assert r.status_code == 201 and r.json()["status"] == "accepted"
    decision = next_decision(home, "ev-partial", last_id(home, "ev-partial"))
    # the pinned pool is that one track: the very next pick is it, and not as an override
    assert decision.track_id == track and not decision.artist_override
    assert decision.inputs["pinned_pool"] == "used"
    artist = client.get("/v1/catalogue", headers=bearer(key)).json()["tracks"]
    by = {t["id"]: t["artist"] for t in artist}
    vetoed = by[decision.track_id]
    r = client.post("/v1/events/ev-partial/controls/veto", headers=bearer(key),
                    json={"artist": vetoed})
    assert r.status_code == 201
    for _ in range(2):
        later = next_decision(home, "ev-partial", last_id(home, "ev-partial"))
        assert by[later.track_id] != vetoed


def test_full_override_changes_the_next_decision(home: Home, client: TestClient) -> None:
    key = home.key("ev-full", "artist", "booth full")
    track = unplayed(home, client, key, "ev-full")
    before = last_id(home, "ev-full")
    r = client.post("/v1/events/ev-full/controls/override", headers=bearer(key),
                    json={"track_id": track})
    assert r.status_code == 201
    control = r.json()
    assert control["status"] == "accepted" and control["by"] == "booth full"
    decision = next_decision(home, "ev-full", before)
    assert decision.track_id == track and decision.artist_override
    assert f"console #{control['id']} by booth full" in decision.explanation
    # the override was used once: the decision after it is the selector's own again
    again = next_decision(home, "ev-full", decision.id)
    assert not again.artist_override
    listed = client.get("/v1/events/ev-full/controls", headers=bearer(key)).json()["controls"]
    assert next(c for c in listed if c["id"] == control["id"])["status"] == "applied"
    state = client.get("/v1/events/ev-full/state", headers=bearer(key)).json()
    assert state["event"]["artist_control"] == "full"
    entry = [e for e in audit(home.settings, "console.control")
             if e.object_id == str(control["id"])]
    assert entry and entry[0].details["track_id"] == track
    assert entry[0].details["label"] == "booth full" and entry[0].details["role"] == "artist"


# -- state and privacy -------------------------------------------------------------------------
def test_state_and_privacy_read_what_the_workers_committed(home: Home,
                                                           client: TestClient) -> None:
    key = home.key("ev-full", "viewer")
    state = client.get("/v1/events/ev-full/state", headers=bearer(key)).json()
    assert state["event"]["policy"] == "privacy-by-default"
    assert state["event"]["adaptive_flow_threshold"] == 40.0
    crowd = state["crowd"]
    assert crowd["window"] == home.drivers["ev-full"].window
    assert set(crowd["zones"]) and 0 <= crowd["sentiment"] <= 100
    privacy = state["privacy"]
    spec = home.events["ev-full"].spec
    assert privacy["wristbands"]["registered"] == len(spec.wristbands)
    assert privacy["drops"]["staff"] > 0 and privacy["drops"]["speech"] > 0
    stored = {s["category"]: s for s in privacy["stored"]}
    assert stored["raw_audio"]["retention"] == "0h" and stored["raw_audio"]["records"] == 0
    assert stored["metadata"]["records"] > 0 and stored["metadata"]["expires_in_seconds"] > 0


@pytest.mark.parametrize(
    ("error", "shown"),
    [
        (RecordShreddedError("subject 0f1e2d3c4b5a… key destroyed at 2026-07-01"), False),
        (NotFoundError("unknown serial 'WB-000123'; register it with flowaudit subject add"), False),
        (IntegrityError("raw segment 41 failed authentication"), False),
        (InputError("--speed 0 must be above 0"), True),
    ],
)
def test_an_error_names_store_internals_to_the_operator_only(
    home: Home, error: Exception, shown: bool
) -> None:
    """A subject's pseudonym, a serial or a record id in our error text never reaches a client;
    the request's own fault is said in full. The route is the app's real error handling."""
    app = create_app(home.settings)

    @app.get("/v1/raise-for-test")
    def fail() -> None:
        raise error

    with TestClient(app) as client:
        response = client.get("/v1/raise-for-test")
    assert response.status_code == 400 and error_of(response) == "refused"
    message = response.json()["error"]["message"]
    assert (message == str(error)) is shown
    for secret in ("0f1e2d3c4b5a", "WB-000123", "41"):
        assert shown or secret not in response.text
