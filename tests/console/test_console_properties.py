"""Properties of the console's rules (hypothesis): what each artist_control mode lets through,
what the stored controls do to the real selector step after step, the rate limit, and the API
key parser on any text (and a real key store, SQLite and PostgreSQL).

The invariants are the ones :mod:`pipeline.live.controls` and :mod:`pipeline.artist` state:
under ``none`` nothing applies; under ``partial`` a vetoed track is never the automatic pick
and the picks come from the pinned pool while it has an unplayed, allowed track; under
``full`` each console override is the pick of one decision, in the order stored, and is
reported applied once. Vetoes and pins are unions (the order of the controls does not
matter); overrides keep their order (it is what the stored ``_used`` indices name).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from flowaudit.console.keys import KEY_PREFIX, ConsoleKeys, KeyRefused, parse_bearer
from flowaudit.console.limits import RateLimiter
from flowaudit.runtime import open_runtime
from pipeline.artist import ArtistControl
from pipeline.catalogue import Catalogue, load_catalogue
from pipeline.event import default_event_file, load_event
from pipeline.live.controls import StoredControl, merge_controls
from pipeline.selection import Selector
from pipeline.sentiment import Snapshot
from retention.ground.console_rules import CONTROL_KINDS, KINDS_BY_MODE, refusal_for
from tests.console.console_fixtures import BACKENDS, database
from tests.console.page_fixtures import new_home

MODES = tuple(KINDS_BY_MODE)
AT = datetime(2026, 6, 21, 20, 0, tzinfo=UTC)
THRESHOLD = 40.0


@cache
def catalogue() -> Catalogue:
    """The demo event's catalogue (320 tracks, 28 artists), read once."""
    return load_catalogue(load_event(default_event_file()).catalogue)


# -- the policy's rule --------------------------------------------------------------------------
@given(mode=st.sampled_from(MODES), kind=st.sampled_from(CONTROL_KINDS))
def test_each_mode_refuses_exactly_the_controls_it_does_not_allow(mode: str, kind: str) -> None:
    refusal = refusal_for(mode, kind)
    if mode == "none":
        assert refusal is not None and refusal[0] == "artist_control_none"
    elif mode == "partial" and kind == "override":
        assert refusal is not None and refusal[0] == "artist_control_partial"
    else:
        assert refusal is None, (mode, kind)
    if refusal is not None:
        assert "artist_control" in refusal[1]


@given(mode=st.text(max_size=12).filter(lambda m: m not in KINDS_BY_MODE),
       kind=st.sampled_from(CONTROL_KINDS))
def test_an_unknown_mode_refuses_every_control(mode: str, kind: str) -> None:
    assert refusal_for(mode, kind) is not None


# -- the stored controls and the real selector ----------------------------------------------------
@st.composite
def controls(draw: st.DrawFn) -> tuple[str, str | None, str | None]:
    """(kind, track_id, artist): a catalogue track, an artist (vetoes) or an unknown track."""
    cat = catalogue()
    kind = draw(st.sampled_from(CONTROL_KINDS))
    target = draw(st.sampled_from(("track", "track", "unknown", "artist")))
    if target == "artist" and kind == "veto":
        return kind, None, draw(st.sampled_from(sorted(set(cat.artists()))))
    if target == "unknown":
        return kind, "NOPE-" + draw(st.text("abc", min_size=1, max_size=4)), None
    return kind, cat.tracks[draw(st.integers(0, len(cat) - 1))].id, None


def _stored(items: list[tuple[str, str | None, str | None]], first: int = 1
            ) -> list[StoredControl]:
    return [StoredControl(first + i, k, t, a, f"band {i}") for i, (k, t, a) in enumerate(items)]


def _expected_masks(items: list[StoredControl], mode: str) -> tuple[set[int], set[int]]:
    """Vetoed and pinned track indices, worked out without merge_controls' code."""
    cat = catalogue()
    vetoed: set[int] = set()
    pinned: set[int] = set()
    if mode == "none":
        return vetoed, pinned
    for c in items:
        idx = cat.index_of(c.track_id) if c.track_id else None
        if c.kind == "veto":
            if idx is not None:
                vetoed.add(idx)
            elif c.artist:
                vetoed |= {i for i, t in enumerate(cat.tracks) if t.artist == c.artist}
        elif c.kind == "pin" and idx is not None:
            pinned.add(idx)
    return vetoed, pinned


def _indices(mask: np.ndarray | None) -> set[int]:
    return set() if mask is None else {int(i) for i in np.flatnonzero(mask)}


@given(mode=st.sampled_from(MODES), items=st.lists(controls(), max_size=12), data=st.data())
def test_vetoes_and_pins_are_unions_whatever_the_order(mode: str, items: list[Any],
                                                       data: st.DataObject) -> None:
    stored = _stored(items)
    shuffled = data.draw(st.permutations(stored))
    one, two = ArtistControl(mode), ArtistControl(mode)
    merge_controls(one, stored, catalogue())
    merge_controls(two, list(shuffled), catalogue())
    vetoed, pinned = _expected_masks(stored, mode)
    assert _indices(one.vetoed) == _indices(two.vetoed) == vetoed
    assert _indices(one.pinned) == _indices(two.pinned) == pinned
    # merging the same controls again changes no mask (a union with itself)
    merge_controls(one, stored, catalogue())
    assert _indices(one.vetoed) == vetoed and _indices(one.pinned) == pinned
    # overrides: only under full, after the event file's own, in the order given
    tracks = [c.track_id for c in stored if c.kind == "override"
              and catalogue().index_of(c.track_id or "") is not None]
    fresh = ArtistControl(mode)
    merge_controls(fresh, stored, catalogue())
    assert [o.track for o in fresh.overrides] == (tracks if mode == "full" else [])


def _snapshot(crowd: float) -> Snapshot:
    return Snapshot(crowd=crowd, crowd_raw=crowd, trend_per_min=0.0, zones={}, zone_raw={},
                    zone_counts={}, active=10)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mode=st.sampled_from(MODES),
       steps=st.lists(st.tuples(st.lists(controls(), max_size=3), st.floats(0, 100)),
                      min_size=1, max_size=8))
def test_stored_controls_steer_the_real_selector_step_after_step(
        mode: str, steps: list[tuple[list[Any], float]]) -> None:
    """Each step does what a live crowd step does: a fresh selector from the saved state, the
    event's stored controls merged in, one decision, the state saved (module docstring)."""
    cat = catalogue()
    stored: list[StoredControl] = []
    applied: set[int] = set()
    used: set[int] = set()
    played: list[int] = []
    bare_played: list[int] = []  # the same decisions with no controls at all
    picked_overrides: list[int] = []
    for n, (new, crowd) in enumerate(steps):
        stored += _stored(new, first=len(stored) + 1)
        rows = [StoredControl(c.id, c.kind, c.track_id, c.artist, c.label, c.id in applied)
                for c in stored]
        artist = ArtistControl(mode)
        artist._used = set(used)
        marked = merge_controls(artist, rows, cat)
        assert not set(marked) & applied, "a control is reported applied once"
        applied |= set(marked)
        # reported applied: exactly the overrides the earlier decisions played
        assert applied == set(picked_overrides)
        selector = Selector(cat, artist, THRESHOLD)
        selector.played = list(played)
        at = AT + timedelta(minutes=3 * n)
        choice = selector.decide(at, _snapshot(crowd))
        pick = cat.index_of(choice.track_id)
        assert pick is not None
        used, played = set(artist._used), list(selector.played)

        vetoed, pinned = _expected_masks(stored, mode)
        overrides = [c for c in stored if c.kind == "override"
                     and cat.index_of(c.track_id or "") is not None]
        if mode == "full" and len(picked_overrides) < len(overrides):
            due = overrides[len(picked_overrides)]
            assert choice.artist_override and choice.track_id == due.track_id
            picked_overrides.append(due.id)
            continue
        assert not choice.artist_override
        if mode == "none":
            bare = Selector(cat, ArtistControl("none"), THRESHOLD)
            bare.played = list(bare_played)
            assert choice.track_id == bare.decide(at, _snapshot(crowd)).track_id
            bare_played = list(bare.played)
            continue
        allowed = set(range(len(cat))) - vetoed
        assume(allowed)
        assert pick not in vetoed
        before = set(played[:-1])
        if pinned & allowed - before:
            assert pick in pinned
    if mode != "full":
        assert not applied and not picked_overrides


# -- the rate limit -------------------------------------------------------------------------
@given(rate=st.floats(0.1, 1000), burst=st.integers(1, 200),
       gaps=st.lists(st.floats(0, 2), min_size=1, max_size=300))
def test_a_key_never_gets_more_than_its_burst_plus_what_the_rate_refills(
        rate: float, burst: int, gaps: list[float]) -> None:
    now = [1000.0]
    limiter = RateLimiter(lambda: now[0])
    taken = 0
    for gap in gaps:
        now[0] += gap
        wait = limiter.retry_after("k", rate, burst)
        if wait == 0:
            taken += 1
        else:
            assert wait >= 1 and isinstance(wait, int)
        assert taken <= burst + rate * (now[0] - 1000.0) + 1e-6
    # after waiting what it was told, a refused key gets through
    while limiter.retry_after("k", rate, burst) == 0:
        pass
    now[0] += limiter.retry_after("k", rate, burst)
    assert limiter.retry_after("k", rate, burst) == 0


# -- the API key parser -----------------------------------------------------------------------
def _key(secret: bytes) -> str:
    """A key as ``ConsoleKeys.issue`` makes one: the prefix and 32 bytes in base64url."""
    return KEY_PREFIX + base64.urlsafe_b64encode(secret).rstrip(b"=").decode("ascii")


HEADERS = st.one_of(
    st.text(max_size=120),
    st.binary(max_size=120).map(lambda b: b.decode("latin-1")),  # a header's bytes, as ASGI
    st.builds(lambda s, v: f"{s} {v}", st.sampled_from(("Bearer", "bearer", "BEARER", "Basic")),
              st.text(max_size=60)),
    st.builds(lambda b, e: f"Bearer {_key(b)}{e}", st.binary(min_size=32, max_size=32),
              st.text(max_size=3)),
)


@given(header=st.one_of(st.none(), HEADERS))
def test_the_parser_takes_only_well_formed_keys_and_never_crashes(header: str | None) -> None:
    try:
        key = parse_bearer(header)
    except KeyRefused as refused:
        assert refused.code in ("no_key", "bad_key") and refused.message
        assert header is None or not header.strip() or refused.code == "bad_key"
        return
    assert header is not None
    scheme, _, value = header.strip().partition(" ")
    assert scheme.lower() == "bearer" and value.strip() == key
    assert key.startswith(KEY_PREFIX) and len(key) == len(KEY_PREFIX) + 43
    assert set(key[len(KEY_PREFIX):]) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@given(secret=st.binary(min_size=32, max_size=32),
       scheme=st.sampled_from(("Bearer", "bearer", "BeArEr")),
       pad=st.sampled_from(("", " ", "  ", "\t")))
def test_a_key_round_trips_through_its_header(secret: bytes, scheme: str, pad: str) -> None:
    key = _key(secret)
    assert parse_bearer(f"{pad}{scheme} {pad}{key}{pad}") == key
    assert base64.urlsafe_b64decode(key[len(KEY_PREFIX):] + "=") == secret


@pytest.fixture(scope="module", params=BACKENDS)
def keys(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
         pg_available: bool) -> Iterator[tuple[ConsoleKeys, str, str]]:
    tmp: Path = tmp_path_factory.mktemp(f"console-keys-{request.param}")
    with database(str(request.param), pg_available) as db_url:
        settings_ = new_home(tmp / "home", db_url)
        runtime = open_runtime(settings_, AT)
        try:
            store = ConsoleKeys(runtime.store)
            issued = store.issue(role="viewer", label="prop", event_id="ev-1", now=AT)
            yield store, issued.key, issued.key_id
        finally:
            runtime.close()


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.one_of(st.none(), HEADERS))
def test_the_key_store_refuses_anything_but_an_issued_key(
        keys: tuple[ConsoleKeys, str, str], header: str | None) -> None:
    store, key, key_id = keys
    try:
        info = store.authenticate(header)
    except KeyRefused as refused:
        assert refused.code in ("no_key", "bad_key")
        return
    assert parse_bearer(header) == key and info.key_id == key_id  # only the issued one


@settings(max_examples=20, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(at=st.integers(len(KEY_PREFIX), len(KEY_PREFIX) + 42), char=st.sampled_from("Aa0-_"))
def test_an_issued_key_authenticates_and_any_one_character_change_does_not(
        keys: tuple[ConsoleKeys, str, str], at: int, char: str) -> None:
    store, key, key_id = keys
    assert store.authenticate(f"Bearer {key}").key_id == key_id
    changed = key[:at] + char + key[at + 1:]
    assume(changed != key)
    with pytest.raises(KeyRefused) as refused:
        store.authenticate(f"Bearer {changed}")
    assert refused.value.code == "bad_key" and key not in refused.value.message
