"""The console's live API on loopback: stream latency and /v1 state requests per second.

    .venv/bin/python -P bench/console.py [--quick] [--db URL] [--poll S] [--clients N]

The console app (:func:`flowaudit.console.app.create_app`) runs in its own process under
uvicorn on a free loopback port, as ``flowaudit console serve`` runs it, over a temporary
home (SQLite, or a fresh schema of the PostgreSQL ``--db`` names). One live event under
privacy-by-default (12 wristbands, 3 s windows, a decision every 15 s of event time) is fed in
this process by the console tests' driver: per window the real WindowCommitter commits every
wristband's window and the real CrowdStepper takes the crowd step (and decisions).

1. **Stream latency.** An SSE client (httpx, a thread of this process) holds
   ``/v1/events/{id}/stream``. Windows are committed at random gaps (so commits fall at every
   phase of the stream's poll); latency = the SSE event's arrival minus the moment the
   commit returned, for every ``sentiment`` (crowd window) and ``decision`` event. Baselines,
   same run: a bare read of the same row (one SELECT by key, in this process), and the floor
   the poll sets — an event waits for the next poll, uniformly 0 to ``--poll`` s.
2. **State requests/s.** ``--clients`` concurrent httpx clients (one connection and one
   viewer key each) call ``GET /v1/events/{id}/state`` for a few seconds; baseline, same
   server and same run: a bare FastAPI route on the same app (a sync route like the state
   route, same middleware) returning a constant JSON. Phases alternate (baseline, state,
   baseline, state); the ratio is of their means. The server's CPU time per request (from
   /proc) and the client's are printed too: on a shared machine the client competes for the
   same cores, and a server far from 100 % of a core was not the bottleneck.

On 2 shared cores the client, the server and the database compete: read the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from bench._procs import stop  # noqa: E402
from flowaudit.config import Settings, resolve_settings  # noqa: E402
from flowaudit.console.keys import issue_key  # noqa: E402
from retention.models import Decision, LiveCrowdWindow  # noqa: E402
from tests.console.page_fixtures import (  # noqa: E402
    LiveDriver,
    make_event,
    new_home,
    pg_schema,
)
from tests.servers import free_port, wait_for_port  # noqa: E402

EVENT = "bench-console"
POLICY = "privacy-by-default"  # artist_control = full
CONSTANT = {"status": "ok", "version": "1.0.0", "items": [1, 2, 3]}


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


# -- the server process -------------------------------------------------------------------------
def serve(home: Path, port: int, poll: float, event_file: Path) -> None:
    """The console app plus the baseline route, under uvicorn (what ``console serve`` runs)."""
    import uvicorn

    from flowaudit.console.app import create_app

    app = create_app(resolve_settings(home=home), event_files=[event_file], poll_interval=poll)

    @app.get("/bench/constant", include_in_schema=False)
    def constant() -> dict[str, Any]:
        return CONSTANT

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on",
                timeout_graceful_shutdown=3)


@contextlib.contextmanager
def server(home: Path, poll: float, event_file: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWAUDIT_")}
    process = subprocess.Popen(
        [sys.executable, "-P", str(Path(__file__).resolve()), "--serve", str(home),
         "--port", str(port), "--poll", str(poll), "--event-file", str(event_file)],
        env=env, cwd=ROOT)
    try:
        wait_for_port(port, timeout=60, process=process)
        yield f"http://127.0.0.1:{port}", process.pid
    finally:
        stop(process)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- 1. stream latency ----------------------------------------------------------------------------
class StreamClient(threading.Thread):
    """Reads the SSE stream; keeps each sentiment/decision event's first arrival time."""

    def __init__(self, url: str, key: str) -> None:
        super().__init__(name="sse-client", daemon=True)
        self.url, self.key = url, key
        self.arrived: dict[tuple[str, int], float] = {}
        self.error: BaseException | None = None
        self._stopping = threading.Event()
        self._response: httpx.Response | None = None

    def run(self) -> None:
        try:
            headers = {"Authorization": f"Bearer {self.key}", "Accept": "text/event-stream"}
            timeout = httpx.Timeout(10.0, read=60.0)
            with httpx.Client(timeout=timeout) as client, client.stream(
                    "GET", f"{self.url}/v1/events/{EVENT}/stream", headers=headers) as r:
                r.raise_for_status()
                self._response = r
                kind, data = "", ""
                for line in r.iter_lines():
                    if self._stopping.is_set():
                        return
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        data = line[6:]
                    elif not line and kind:
                        self._dispatch(kind, data, time.perf_counter())
                        kind, data = "", ""
        except BaseException as exc:  # reported by wait()
            if not self._stopping.is_set():
                self.error = exc

    def _dispatch(self, kind: str, data: str, at: float) -> None:
        import json

        if kind not in ("sentiment", "decision"):
            return
        body = json.loads(data)
        ident = int(body["window"] if kind == "sentiment" else body["id"])
        self.arrived.setdefault((kind, ident), at)

    def wait(self, keys: set[tuple[str, int]], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.error is not None:
                raise SystemExit(f"the stream client failed: {self.error!r}")
            if keys <= self.arrived.keys():
                return
            time.sleep(0.01)
        missing = sorted(keys - self.arrived.keys())[:5]
        raise SystemExit(f"stream events never arrived (first missing: {missing})")

    def stop(self) -> None:
        """Close the connection (the server's stream sees the client go) and join."""
        self._stopping.set()
        if self._response is not None:
            sock = self._response.extensions["network_stream"].get_extra_info("socket")
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self.join(timeout=10)


def _last_ids(driver: LiveDriver) -> tuple[int, int]:
    with driver.runtime.store.session() as s:
        window = s.scalar(select(func.max(LiveCrowdWindow.window))
                          .where(LiveCrowdWindow.event_id == EVENT))
        decision = s.scalar(select(func.max(Decision.id)).where(Decision.event_id == EVENT))
    return (-1 if window is None else int(window)), int(decision or 0)


def bare_reads(driver: LiveDriver, n: int) -> list[float]:
    """ms per SELECT of one crowd window row by key (the row the stream sends)."""
    window, _ = _last_ids(driver)
    out = []
    with driver.runtime.store.session() as s:
        for _ in range(n):
            t0 = time.perf_counter()
            row = s.execute(select(LiveCrowdWindow).where(
                LiveCrowdWindow.event_id == EVENT, LiveCrowdWindow.window == window)
            ).scalar_one()
            out.append((time.perf_counter() - t0) * 1000)
            s.expunge(row)
    return out


def stream_latency(url: str, key: str, driver: LiveDriver, windows: int,
                   gap: tuple[float, float]) -> dict[str, list[float]]:
    client = StreamClient(url, key)
    client.start()
    window, decision = _last_ids(driver)
    client.wait({("sentiment", window), ("decision", decision)}, timeout=30)  # the backlog
    committed: dict[tuple[str, int], float] = {}
    rng = random.Random(7)
    for _ in range(windows):
        time.sleep(rng.uniform(*gap))
        driver.advance()
        done = time.perf_counter()
        new_window, new_decision = _last_ids(driver)
        for w in range(window + 1, new_window + 1):
            committed[("sentiment", w)] = done
        for d in range(decision + 1, new_decision + 1):
            committed[("decision", d)] = done
        window, decision = new_window, new_decision
    client.wait(set(committed), timeout=60)
    client.stop()
    out: dict[str, list[float]] = {"sentiment": [], "decision": []}
    for (kind, ident), at in committed.items():
        out[kind].append((client.arrived[(kind, ident)] - at) * 1000)
    return out


# -- 2. state requests/s -----------------------------------------------------------------------
async def _hammer(url: str, keys: list[str], path: str, seconds: float) -> tuple[int, list[float]]:
    stop = time.perf_counter() + seconds
    times: list[float] = []

    async def one(key: str) -> int:
        n = 0
        headers = {"Authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                r = await client.get(path)
                times.append((time.perf_counter() - t0) * 1000)
                if r.status_code != 200:
                    raise SystemExit(f"{path} answered {r.status_code}: {r.text[:200]}")
                n += 1
        return n

    counts = await asyncio.gather(*(one(k) for k in keys))
    return sum(counts), times


def throughput(url: str, pid: int, keys: list[str], seconds: float) -> dict[str, Any]:
    paths = {"constant": "/bench/constant", "state": f"/v1/events/{EVENT}/state"}
    for path in paths.values():  # warm up: connections, caches, the first key use audited
        asyncio.run(_hammer(url, keys, path, 0.5))
    phases: dict[str, list[dict[str, float]]] = {"constant": [], "state": []}
    for name in ("constant", "state", "constant", "state"):
        cpu0, mine0, t0 = cpu_seconds(pid), time.process_time(), time.perf_counter()
        n, times = asyncio.run(_hammer(url, keys, paths[name], seconds))
        wall, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
        mine = time.process_time() - mine0
        phases[name].append({"rps": n / wall, "p50": pct(times, 50), "p99": pct(times, 99),
                             "cpu_ms": 1000 * cpu / max(n, 1), "n": n,
                             "client_ms": 1000 * mine / max(n, 1),
                             "server_busy": cpu / wall})
    return phases


def _mean(rows: list[dict[str, float]], key: str) -> float:
    return float(np.mean([r[key] for r in rows]))


# -- the run ------------------------------------------------------------------------------------
def check_postgres(url: str) -> None:
    """One line, no traceback, when the ``--db`` server does not answer."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    engine = create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        reason = str(exc.orig if getattr(exc, "orig", None) else exc).splitlines()[0][:200]
        raise SystemExit(f"--db: PostgreSQL does not answer ({reason}); start it with "
                         "`make services` or fix the URL") from None
    finally:
        engine.dispose()


def run(args: argparse.Namespace) -> None:
    windows = 60 if args.quick else 300
    seconds = 1.5 if args.quick else 5.0
    gap = (0.05, 0.25)
    tmp = Path(tempfile.mkdtemp(prefix="flowaudit-bench-console-"))
    database = pg_schema(args.db) if args.db else contextlib.nullcontext("")
    with database as db_url:
        settings: Settings = new_home(tmp / "home", db_url)
        event = make_event(tmp, EVENT, POLICY, starts=datetime.now(UTC).replace(microsecond=0))
        driver = LiveDriver(settings, event, seed=3)
        try:
            for _ in range(8):
                driver.advance()
            store = "PostgreSQL (fresh schema)" if args.db else "SQLite (WAL file)"
            print(f"console on loopback: uvicorn in its own process, store {store}, policy "
                  f"{POLICY}, {len(event.spec.wristbands)} wristbands, stream poll "
                  f"{args.poll:g} s; {os.cpu_count()} CPU cores shared by every process")
            with server(settings.home, args.poll, event.event_file) as (url, pid):
                viewer = str(issue_key(settings, role="viewer", label="bench stream",
                                       event_id=EVENT))
                lat = stream_latency(url, viewer, driver, windows, gap)
                reads = bare_reads(driver, 300 if args.quick else 1000)
                both = lat["sentiment"] + lat["decision"]
                print(f"stream    {len(lat['sentiment'])} sentiment + {len(lat['decision'])} "
                      f"decision events, commits {gap[0]:g}-{gap[1]:g} s apart at random: "
                      f"commit returned → SSE event at the client")
                for name, values in (("sentiment", lat["sentiment"]),
                                     ("decision", lat["decision"]), ("all", both)):
                    print(f"          {name:<9} p50 {pct(values, 50):6.1f} ms, p99 "
                          f"{pct(values, 99):6.1f} ms, max {max(values):6.1f} ms")
                floor50, floor99 = 500 * args.poll, 990 * args.poll
                print(f"baseline  bare SELECT of the same row: p50 {pct(reads, 50):.3f} ms, "
                      f"p99 {pct(reads, 99):.3f} ms; poll floor (wait for the next poll, "
                      f"uniform 0-{args.poll:g} s): p50 {floor50:.0f} ms, p99 {floor99:.0f} ms")
                print(f"          p50 over the poll floor: {pct(both, 50) - floor50:+.1f} ms; "
                      f"p99 / floor p99 = {pct(both, 99) / floor99:.2f}×")
                keys = [str(issue_key(settings, role="viewer", label=f"bench client {i}",
                                      event_id=EVENT, rate=1000, burst=10000))
                        for i in range(args.clients)]
                phases = throughput(url, pid, keys, seconds)
                c, s = phases["constant"], phases["state"]
                print(f"state     {args.clients} concurrent httpx clients (a connection and "
                      f"a viewer key each, rate limit 1000/s), {seconds:g} s per phase, "
                      "baseline/state alternating twice:")
                for name, rows in (("baseline", c), ("state", s)):
                    print(f"          {name:<8} " + ", ".join(f"{r['rps']:.0f}" for r in rows)
                          + f" req/s (mean {_mean(rows, 'rps'):.0f}); p50 "
                          f"{_mean(rows, 'p50'):.1f} ms, p99 {_mean(rows, 'p99'):.1f} ms; "
                          f"CPU ms/request server {_mean(rows, 'cpu_ms'):.2f}, client "
                          f"{_mean(rows, 'client_ms'):.2f}; server busy "
                          f"{100 * _mean(rows, 'server_busy'):.0f} % of a core")
                print(f"          state / bare constant route = "
                      f"{_mean(s, 'rps') / _mean(c, 'rps'):.2f}× requests/s; server CPU per "
                      f"request {_mean(s, 'cpu_ms') / _mean(c, 'cpu_ms'):.1f}×")
        finally:
            driver.runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short run (about 40 s)")
    parser.add_argument("--db", default=None,
                        help="a PostgreSQL URL (a fresh schema is made and dropped); "
                             "default: a temporary SQLite home")
    parser.add_argument("--poll", type=float, default=0.25,
                        help="the stream's poll interval in seconds (console serve's default)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent /state clients")
    parser.add_argument("--serve", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--event-file", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not 0.01 <= args.poll <= 5:
        parser.error(f"--poll {args.poll:g}; use 0.01 to 5 seconds")
    if not 1 <= args.clients <= 64:
        parser.error(f"--clients {args.clients}; use 1 to 64")
    if args.db is not None and not args.db.startswith("postgresql"):
        parser.error("--db takes a PostgreSQL URL, e.g. "
                     "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    if args.serve is not None:
        serve(args.serve, args.port, args.poll, args.event_file)
        return
    if args.db is not None:
        check_postgres(args.db)
    run(args)


if __name__ == "__main__":
    main()
