"""The HTML reports render in headless Chromium with the expected headings, fetch nothing.

Chromium (Debian's ``chromium``, installed by ``make system-deps``) runs with every outgoing
request forced through a local "proxy" socket that records the host each request is for and
answers nothing: a report that tried to fetch a font, a script or an image would show up
there. Chromium itself still calls home (component updates, account checks) even with the
background-networking flags; those hosts are what a blank local page also produces, measured
in the same run, plus a fixed list of Chromium's own service hosts. A control page with one
remote image proves the trap catches fetches.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from audit.reports import ReportContext, build_report, render

from .chromium_helpers import Trap, chromium, headings
from .conftest import Built

STORE_KINDS = ("gdpr", "retention", "dpia", "dsa", "ai-act")


@pytest.fixture(scope="module")
def html_reports(pipeline_stores: dict[str, Built], tmp_path_factory: pytest.TempPathFactory):
    b = pipeline_stores["spotify-2026"]
    ctx = ReportContext.open(b.runtime, now=b.now, event_id=b.event_id)
    out = tmp_path_factory.mktemp("html")
    pages = {}
    for kind in STORE_KINDS:
        report = build_report(kind, ctx)
        path = out / f"{kind}.html"
        path.write_text(render(report, "html"), encoding="utf-8")
        pages[kind] = (report, path)
    return pages


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_html_references_nothing_outside_itself(kind: str, html_reports: dict) -> None:
    html = html_reports[kind][1].read_text(encoding="utf-8")
    assert not re.search(r"https?:", html, flags=re.I)
    assert "//" not in re.sub(r"<!--.*?-->", "", html).replace("://", "")
    for pattern in (r"<script", r"<link", r"<img", r"<iframe", r"\bsrc=", r"@import", r"url\("):
        assert not re.search(pattern, html, flags=re.I), pattern
    assert all(h.startswith("#") for h in re.findall(r'href="([^"]*)"', html))
    assert html.count("<svg") >= (1 if kind != "gdpr" else 0)  # charts are inline


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_html_renders_in_chromium_with_its_headings(
    kind: str, html_reports: dict, tmp_path: Path, trap: Trap, background: set[str]
) -> None:
    report, path = html_reports[kind]
    dom = chromium(path, tmp_path, trap, "--dump-dom").stdout
    found = headings(dom)
    assert found[0] == ("h1", report.title)
    expected = [("h2", f"{i}. {s.title}") for i, s in enumerate(report.sections, 1)]
    assert [h for h in found if h[0] == "h2"] == expected
    fetched = trap.take() - background
    assert not fetched, f"the report made Chromium fetch from {sorted(fetched)}"


def test_screenshot_of_the_retention_report(
    html_reports: dict, tmp_path: Path, trap: Trap, background: set[str]
) -> None:
    _, path = html_reports["retention"]
    png = tmp_path / "retention.png"
    chromium(path, tmp_path, trap, f"--screenshot={png}", "--window-size=1280,2000")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 50_000  # a blank page is a few kB; text, tables and charts are not
    assert not trap.take() - background


def test_the_trap_catches_a_remote_fetch(tmp_path: Path, trap: Trap, background: set[str]) -> None:
    """Control: a page that loads a remote image does reach the recording proxy."""
    page = tmp_path / "control.html"
    page.write_text(
        '<!DOCTYPE html><html><body><img src="http://example.invalid/x.png"></body></html>',
        encoding="utf-8",
    )
    chromium(page, tmp_path, trap, "--dump-dom")
    assert "example.invalid" in trap.take() - background
