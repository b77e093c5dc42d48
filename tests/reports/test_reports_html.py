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
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from audit.reports import ReportContext, build_report, render

from .conftest import Built

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
STORE_KINDS = ("gdpr", "retention", "dpia", "dsa", "ai-act")


#: hosts Chromium contacts on its own (updater, sign-in, network time), never a report's
CHROMIUM_SERVICES = {
    "update.googleapis.com",
    "accounts.google.com",
    "clients2.google.com",
    "clients1.google.com",
    "optimizationguide-pa.googleapis.com",
    "safebrowsingohttpgateway.googleapis.com",
    "content-autofill.googleapis.com",
    "redirector.gvt1.com",
}
_REQUEST = re.compile(rb"^(?:CONNECT ([^\s:/]+)|[A-Z]+ https?://([^\s:/]+))")


class _Trap:
    """A 'proxy' socket that records the host of every request Chromium sends through it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.hosts: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            conn.settimeout(2)
            try:
                first = conn.recv(4096)
            except OSError:
                first = b""
            match = _REQUEST.match(first)
            self.hosts.append(
                (match.group(1) or match.group(2)).decode()
                if match
                else first[:40].decode("latin-1")
            )
            conn.close()

    def take(self) -> set[str]:
        """Hosts requested so far (and forget them)."""
        time.sleep(0.2)  # let the accept loop drain
        hosts, self.hosts = set(self.hosts), []
        return hosts

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def trap() -> Iterator[_Trap]:
    t = _Trap()
    yield t
    t.close()


@pytest.fixture(scope="module")
def background(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Hosts Chromium contacts for a blank local page: its own background traffic."""
    tmp = tmp_path_factory.mktemp("blank")
    page = tmp / "blank.html"
    page.write_text("<!DOCTYPE html><html><body><h1>blank</h1></body></html>", encoding="utf-8")
    t = _Trap()
    try:
        chromium(page, tmp, t, "--dump-dom")
        return t.take() | CHROMIUM_SERVICES
    finally:
        t.close()


def chromium(page: Path, tmp: Path, trap: _Trap, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp / f"chromium-profile-{len(list(tmp.iterdir()))}"
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--no-pings",
        "--disable-features=NetworkTimeServiceQuerying,OptimizationHints,MediaRouter",
        f"--user-data-dir={profile}",
        f"--proxy-server=http://127.0.0.1:{trap.port}",
        "--proxy-bypass-list=<-loopback>",
        *args,
        page.resolve().as_uri(),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=90, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


class _Headings(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str]] = []
        self._tag: str | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("h1", "h2"):
            self._tag, self._text = tag, ""

    def handle_data(self, data: str) -> None:
        if self._tag:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == self._tag:
            self.found.append((tag, " ".join(self._text.split())))
            self._tag = None


def headings(dom: str) -> list[tuple[str, str]]:
    parser = _Headings()
    parser.feed(dom)
    return parser.found


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
    kind: str, html_reports: dict, tmp_path: Path, trap: _Trap, background: set[str]
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
    html_reports: dict, tmp_path: Path, trap: _Trap, background: set[str]
) -> None:
    _, path = html_reports["retention"]
    png = tmp_path / "retention.png"
    chromium(path, tmp_path, trap, f"--screenshot={png}", "--window-size=1280,2000")
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 50_000  # a blank page is a few kB; text, tables and charts are not
    assert not trap.take() - background


def test_the_trap_catches_a_remote_fetch(tmp_path: Path, trap: _Trap, background: set[str]) -> None:
    """Control: a page that loads a remote image does reach the recording proxy."""
    page = tmp_path / "control.html"
    page.write_text(
        '<!DOCTYPE html><html><body><img src="http://example.invalid/x.png"></body></html>',
        encoding="utf-8",
    )
    chromium(page, tmp_path, trap, "--dump-dom")
    assert "example.invalid" in trap.take() - background
