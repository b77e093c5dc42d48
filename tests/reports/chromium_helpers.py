"""Headless Chromium for the HTML tests, with a 'proxy' that records every host it is asked for.

Chromium itself still calls home (component updates, account checks) even with the
background-networking flags; those hosts are what a blank local page also produces, measured
once per session, plus a fixed list of Chromium's own service hosts.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time
from html.parser import HTMLParser
from pathlib import Path

__all__ = ["CHROMIUM", "CHROMIUM_SERVICES", "Trap", "chromium", "headings", "blank_page_hosts"]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


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


class Trap:
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
            if not first:  # a preconnected socket closed unused: it asked for nothing
                conn.close()
                continue
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


def chromium(page: Path, tmp: Path, trap: Trap, *args: str) -> subprocess.CompletedProcess[str]:
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


def blank_page_hosts(tmp: Path) -> set[str]:
    """Hosts Chromium contacts for a blank local page (its own background traffic)."""
    page = tmp / "blank.html"
    page.write_text("<!DOCTYPE html><html><body><h1>blank</h1></body></html>", encoding="utf-8")
    trap = Trap()
    try:
        chromium(page, tmp, trap, "--dump-dom")
        return trap.take() | CHROMIUM_SERVICES
    finally:
        trap.close()
