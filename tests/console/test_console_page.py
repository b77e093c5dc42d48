"""The DJ console page in a real browser (Debian's /usr/bin/chromium driven by Playwright,
headless) while two live events stream into a real store: one under full artist control
(privacy-by-default), one under none (spotify-2026).

One browser, one uvicorn server and one pair of live drivers per module; each test opens its
own browser context (a fresh sessionStorage, so the page asks for the key again). Every
context routes each request: one to the console's own server goes on, any other is aborted
and recorded, and each test ends asserting there was none (the page works offline, no CDN).
Screenshots go to ``test-artifacts/console/`` in the project root (made at test time).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from flowaudit.config import Settings
from flowaudit.runtime import open_runtime
from retention.models import LiveCrowdWindow
from tests.console.console_fixtures import BACKENDS, database
from tests.console.page_fixtures import (
    ConsoleEvent,
    ConsoleServer,
    LiveDriver,
    audit_entries,
    decisions_since,
    last_decision_id,
    make_event,
    new_home,
)

CHROMIUM = Path("/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
ARTEFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
WIDE = {"width": 1280, "height": 720}
NARROW = {"width": 420, "height": 900}


@dataclass
class Site:
    """What the tests share: the home, the two events, their drivers, keys and the server."""

    settings: Settings
    backend: str
    full: ConsoleEvent
    none: ConsoleEvent
    drivers: dict[str, LiveDriver]
    keys: dict[str, str]
    server: ConsoleServer

    def url(self, event: ConsoleEvent) -> str:
        return f"{self.server.url}/console/{event.id}"


def _app(settings: Settings, events: list[ConsoleEvent]) -> Any:
    from flowaudit.console.app import create_app

    return create_app(settings, event_files=[e.event_file for e in events])


def _issue_key(settings: Settings, event_id: str, role: str) -> str:
    from flowaudit.console.keys import issue_key

    return str(issue_key(settings, role=role, label=f"page test {role}", event_id=event_id))


@pytest.fixture(scope="module", params=BACKENDS)
def site(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
         pg_available: bool) -> Iterator[Site]:
    backend = str(request.param)
    tmp = tmp_path_factory.mktemp(f"console-{backend}")
    with database(backend, pg_available) as db_url:
        settings = new_home(tmp / "home", db_url)
        now = datetime.now(UTC).replace(microsecond=0)
        full = make_event(tmp, "console-full", "privacy-by-default", starts=now)
        none = make_event(tmp, "console-none", "spotify-2026", starts=now)
        drivers = {full.id: LiveDriver(settings, full, seed=5).start(),
                   none.id: LiveDriver(settings, none, seed=9).start()}
        server: ConsoleServer | None = None
        try:
            keys = {e.id: _issue_key(settings, e.id, "artist") for e in (full, none)}
            server = ConsoleServer(_app(settings, [full, none])).start()
            yield Site(settings, backend, full, none, drivers, keys, server)
        finally:
            if server is not None:
                server.stop()
            for driver in drivers.values():
                driver.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail("/usr/bin/chromium is missing: `make system-deps` (apt-get install chromium)")
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class OpenPage:
    page: Any
    requests: list[str]  # every URL the page asked for
    outside: list[str]  # those not on the console's own loopback server (aborted)
    problems: list[str]  # page errors and CSP refusals


def _offline(opened: OpenPage, site: Site) -> None:
    """The page asked only its own loopback server for anything, and nothing was refused."""
    assert opened.requests, "the page made no request at all"
    assert opened.outside == [], f"the page asked beyond the console's server: {opened.outside}"
    assert all(u.startswith(site.server.url + "/") for u in opened.requests)
    assert opened.problems == []


@pytest.fixture
def open_console(browser: Any, site: Site) -> Iterator[Any]:
    """Open an event's console in a fresh context and give it the key through the form."""
    contexts: list[Any] = []
    pages: list[OpenPage] = []

    def open_(event: ConsoleEvent, viewport: dict[str, int] = WIDE,
              key: str | None = None) -> OpenPage:
        context = browser.new_context(viewport=viewport)
        contexts.append(context)
        opened = OpenPage(context.new_page(), [], [], [])
        pages.append(opened)

        def guard(route: Any) -> None:
            url = route.request.url
            opened.requests.append(url)
            if url.startswith(site.server.url + "/"):
                route.continue_()
            else:
                opened.outside.append(url)
                route.abort()

        context.route("**/*", guard)
        page = opened.page
        page.on("pageerror", lambda e: opened.problems.append(f"page error: {e}"))
        page.on("console", lambda m: opened.problems.append(m.text)
                if "Content Security Policy" in m.text or "Refused to" in m.text else None)
        page.goto(site.url(event))
        page.fill("#key-input", key if key is not None else site.keys[event.id])
        page.click("#key-form button[type=submit]")
        return opened

    yield open_
    for context in contexts:
        context.close()
    for opened in pages:  # every test, whatever it asserted itself
        _offline(opened, site)


def _shot(page: Any, site: Site, name: str) -> None:
    """Keep a screenshot as a test artefact (a PNG, not empty)."""
    path = ARTEFACTS / f"{name}-{site.backend}.png"
    path.unlink(missing_ok=True)
    page.screenshot(path=str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _crowd_line(page: Any) -> str:
    """The drawn crowd line (its SVG path)."""
    return str(page.get_attribute("#chart path.crowd", "d") or "")


def _chart(page: Any) -> tuple[int, float | None, int]:
    """(plotted points, latest crowd value, its window) as the page exposes them, read at once."""
    got = page.evaluate("""() => {
        const c = document.querySelector('#chart').dataset;
        const now = document.querySelector('#crowd-now');
        return [c.points, c.latest, c.window, document.querySelector('#crowd-window').textContent,
                now.dataset.value, now.textContent];
    }""")
    points, latest, window, caption, now, shown = got
    assert f"window {window}" in caption and now == latest  # the caption and the chart agree
    if latest:  # the big number is the plotted value, rounded
        assert abs(int(shown) - float(latest)) <= 0.5
    return int(points or 0), float(latest) if latest else None, int(window or -1)


#: the suggestion panel, read in one go (a new decision may replace it at any moment)
_SUGGESTION = """() => {
    const text = (id) => document.getElementById(id).textContent;
    return {track: document.querySelector('#suggestion-live').dataset.trackId || '',
            artist: text('next-artist'), why: text('next-why'),
            adaptive: !document.getElementById('next-adaptive').hidden,
            override: !document.getElementById('next-override').hidden};
}"""


def _wait_suggestion(page: Any, condition: str, timeout: float = 20_000) -> dict[str, Any]:
    """The suggestion panel once ``condition`` (JS over ``s``, the panel) holds."""
    handle = page.wait_for_function(f"() => {{ const s = ({_SUGGESTION})(); "
                                    f"return ({condition}) ? s : null; }}", timeout=timeout)
    got: dict[str, Any] = handle.json_value()
    return got


def _crowd_of(settings: Settings, event_id: str, window: int) -> float | None:
    runtime = open_runtime(settings, datetime.now(UTC))
    try:
        with runtime.store.session() as session:
            return session.scalar(select(LiveCrowdWindow.crowd)
                                  .where(LiveCrowdWindow.event_id == event_id)
                                  .where(LiveCrowdWindow.window == window))
    finally:
        runtime.close()


# -- the chart ----------------------------------------------------------------------------------
def test_the_chart_moves_while_the_event_streams(open_console: Any, site: Site) -> None:
    opened = open_console(site.full)
    page = opened.page
    page.wait_for_function("() => Number(document.querySelector('#chart').dataset.points) >= 3",
                           timeout=20_000)
    first_points, _, first_window = _chart(page)
    first_line = _crowd_line(page)
    page.wait_for_function(
        f"() => Number(document.querySelector('#chart').dataset.window) >= {first_window + 4}",
        timeout=20_000)
    points, latest, window = _chart(page)
    assert window >= first_window + 4 and points >= min(80, first_points + 4)
    line = _crowd_line(page)
    assert first_line and line and line != first_line  # the drawn line moved
    # the value plotted last is the crowd step the store holds for that window
    stored = _crowd_of(site.settings, site.full.id, window)
    assert stored is not None and latest == pytest.approx(stored, abs=0.01)
    zones = page.eval_on_selector_all("#zones li", "els => els.map(e => e.dataset.zone)")
    assert zones[0] == "Crowd" and len(zones) >= 3
    assert page.get_attribute("#chart", "data-threshold") == "40"
    assert page.inner_text("#stream-status").startswith("live")
    _shot(page, site, "chart")
    # nothing but the console's own server was asked for anything (no CDN), no CSP refusal
    _offline(opened, site)
    assert any("/stream" in u for u in opened.requests)


def test_the_suggestion_shows_the_track_why_and_main_parameters(
    open_console: Any, site: Site
) -> None:
    page = open_console(site.full).page
    shown = _wait_suggestion(page, "s.track")
    track = shown["track"]
    assert track in shown["artist"] and track in shown["why"]
    stored = {d.explanation for d in decisions_since(site.settings, site.full.id, 0)
              if d.track_id == track}
    assert shown["why"] in stored  # the explanation the store holds for that decision
    assert page.get_attribute("#suggestion-live", "aria-live") == "polite"
    params = page.eval_on_selector_all("#next-params dt", "els => els.map(e => e.textContent)")
    assert {"weights", "adaptive_flow_threshold", "artist_control"} <= set(params)
    # the scripted crowd dips under 40: an Adaptive Flow decision is marked on the page
    flow = _wait_suggestion(page, "s.adaptive", timeout=30_000)
    assert "Adaptive Flow" in flow["why"]


# -- controls -----------------------------------------------------------------------------------
def test_an_override_click_changes_the_next_track_and_is_audited(
    open_console: Any, site: Site
) -> None:
    page = open_console(site.full).page
    page.wait_for_selector("#track-pick option")
    driver = site.drivers[site.full.id]
    played = {d.track_id for d in decisions_since(site.settings, site.full.id, 0)}
    options = page.eval_on_selector_all("#track-pick option", "els => els.map(e => e.value)")
    chosen = next(t for t in reversed(options) if t not in played)
    page.fill("#track-filter", chosen)  # the picker filters the catalogue
    assert page.eval_on_selector_all("#track-pick option", "els => els.length") == 1
    page.select_option("#track-pick", chosen)
    # paused: no decision between the click and the control being stored, and none after the
    # next one, which stays the page's suggestion however slow the machine is
    driver.pause()
    try:
        page.click("#do-override")
        page.wait_for_function("() => ['accepted', 'applied'].includes("
                               "document.querySelector('#control-result').dataset.status)",
                               timeout=20_000)
        before = last_decision_id(site.settings, site.full.id)
        assert chosen in page.inner_text("#control-result")
        control_id = page.get_attribute("#control-result", "data-control-id")
        nxt = driver.advance_until(lambda: decisions_since(site.settings, site.full.id,
                                                           before))[0]
        # the very next decision is the overridden track, and says which control did it
        assert (nxt.track_id, nxt.artist_override) == (chosen, True)
        assert f"console #{control_id}" in nxt.explanation
        shown = _wait_suggestion(page, f"s.track === {chosen!r}", timeout=20_000)
        assert shown["override"] and f"console #{control_id}" in shown["why"]
        logged = f"#control-log li[data-control-id='{control_id}']"
        page.wait_for_function(f"() => document.querySelector(\"{logged}\")?.dataset.status "
                               f"=== 'applied'", timeout=20_000)
    finally:
        driver.resume()
    assert chosen in page.inner_text(logged) and "by page test artist" in page.inner_text(logged)
    entries = [e for e in audit_entries(site.settings, "console.control")
               if e.object_id == control_id]
    assert [(e.details.get("kind"), e.details.get("track_id"), e.details.get("status"))
            for e in entries] == [("override", chosen, "accepted")]
    assert entries[0].details.get("role") == "artist"
    _shot(page, site, "override")


def driver_wait(driver: LiveDriver, check: Any) -> Any:
    found: list[Any] = []

    def done() -> bool:
        found[:] = check()
        return bool(found)

    driver.wait_for(done, what="the next decision")
    return found


def test_a_refused_override_shows_its_reason(open_console: Any, site: Site) -> None:
    page = open_console(site.none).page
    page.wait_for_selector("#track-pick option")
    chosen = page.eval_on_selector("#track-pick option", "e => e.value")
    page.select_option("#track-pick", chosen)
    audited = {e.seq for e in audit_entries(site.settings, "console.control")}
    before = last_decision_id(site.settings, site.none.id)
    page.click("#do-override")
    page.wait_for_function("() => document.querySelector('#control-result').dataset.status "
                           "=== 'refused'", timeout=20_000)
    # the reason, as the server gave it, is what the DJ reads
    text = page.inner_text("#control-result")
    assert text.startswith("Refused:") and "artist_control" in text and "none" in text
    assert page.get_attribute("#control-result", "data-code") == "artist_control_none"
    assert page.inner_text("#event-artist-control") == "none"
    # stored and audited as refused, with its reason and who asked
    new = [e for e in audit_entries(site.settings, "console.control") if e.seq not in audited]
    assert [(e.details.get("kind"), e.details.get("track_id"), e.details.get("status"),
             e.details.get("reason"), e.details.get("role")) for e in new] == [
        ("override", chosen, "refused", "artist_control_none", "artist")]
    control_id = new[0].object_id
    # the stream brings the refused control into the page's log, reason shown
    logged = f"#control-log li[data-control-id='{control_id}']"
    page.wait_for_function(f"() => document.querySelector(\"{logged}\")?.dataset.status "
                           f"=== 'refused'", timeout=20_000)
    assert "artist_control_none" in page.inner_text(logged)
    # and the next decision is the selector's own
    nxt = driver_wait(site.drivers[site.none.id],
                      lambda: decisions_since(site.settings, site.none.id, before))[0]
    assert not nxt.artist_override and "console #" not in (nxt.explanation or "")
    _shot(page, site, "refused")


# -- privacy ------------------------------------------------------------------------------------
def test_the_privacy_countdown_ticks(open_console: Any, site: Site) -> None:
    page = open_console(site.none).page
    cell = "#stored tr[data-category='raw_audio'] td.countdown"
    page.wait_for_function(f"() => document.querySelector(\"{cell}\")?.dataset.seconds",
                           timeout=20_000)
    first = int(page.get_attribute(cell, "data-seconds") or 0)
    assert 0 < first <= 72 * 3600 + 3600
    page.wait_for_function(
        f"() => Number(document.querySelector(\"{cell}\").dataset.seconds) <= {first - 2}",
        timeout=20_000)
    assert page.get_attribute("#stored tr[data-category='raw_audio']", "data-retention") == "72h"
    assert page.inner_text("#wb-registered") == str(len(site.none.spec.wristbands))
    reasons = page.eval_on_selector_all("#drops li", "els => els.map(e => e.dataset.reason)")
    assert {"speech", "staff"} <= set(reasons)
    _shot(page, site, "privacy")


def test_the_page_reads_at_a_narrow_width(open_console: Any, site: Site) -> None:
    page = open_console(site.none, NARROW).page
    page.wait_for_function("() => Number(document.querySelector('#chart').dataset.points) >= 2",
                           timeout=20_000)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= NARROW["width"], "the page scrolls sideways at a narrow width"
    _shot(page, site, "narrow")


def test_a_wrong_key_is_refused_on_the_form(open_console: Any, site: Site) -> None:
    page = open_console(site.full, key="fck_not-a-key").page
    page.wait_for_function("() => document.querySelector('#key-error').textContent.length > 0",
                           timeout=20_000)
    assert page.is_visible("#key-panel") and page.is_hidden("#console")
    assert page.evaluate("sessionStorage.length") == 0
