"""`flowaudit console` as a user runs it, in subprocesses: its error paths (one stderr line
that names what is wrong and what to do, a non-zero exit, no traceback), serving until
SIGTERM, and `console key issue|list|revoke` on SQLite and PostgreSQL.

The subprocess error cases are independent processes, run two at a time (the machine has two
cores); the rest of the error cases go through the same command group in this process."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from click.testing import Result
from typer.testing import CliRunner

from flowaudit.cli import app
from flowaudit.cli._tables import print_table, state_of
from flowaudit.config import Settings
from flowaudit.console.keys import ConsoleKeys, KeyRefused
from flowaudit.runtime import open_runtime
from tests.console.console_fixtures import database
from tests.console.page_fixtures import LiveDriver, make_event, new_home
from tests.servers import free_port, wait_for_port

EVENT = "ev-cli"
KEY_RE = re.compile(r"fak_[A-Za-z0-9_-]{43}")
TIMEOUT = 60  # seconds a CLI process may take: generous, the machine is shared


@dataclass(frozen=True)
class CliHome:
    settings: Settings
    root: Path  # a directory of the test's own (no home in it)
    env: dict[str, str]


def _env(root: Path) -> dict[str, str]:
    """The user's environment without flowaudit's variables, HOME in the test's directory."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWAUDIT_", "XDG_"))}
    env.update(HOME=str(root), COLUMNS="200", PYTHONUNBUFFERED="1")
    return env


@pytest.fixture(scope="module")
def cli_home(tmp_path_factory: pytest.TempPathFactory) -> CliHome:
    """A SQLite home holding one registered event with one committed window."""
    root = tmp_path_factory.mktemp("console-cli")
    settings = new_home(root / "home", None)
    spec = make_event(root, EVENT, "tiktok-2026", starts=datetime.now(UTC).replace(microsecond=0))
    driver = LiveDriver(settings, spec)
    try:
        driver.advance()
    finally:
        driver.runtime.close()
    return CliHome(settings, root, _env(root))


def flowaudit(home: CliHome, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowaudit", *args], env=home.env,
                          cwd=home.root, capture_output=True, text=True, timeout=TIMEOUT)


def invoke(home: CliHome, *args: str) -> Result:
    """The command in this process, with the environment :func:`flowaudit` gives."""
    unset: dict[str, str | None] = {k: None for k in os.environ if k not in home.env}
    return CliRunner().invoke(app, list(args), env={**unset, **home.env})


def one_error_line(done: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """The run failed with exactly one stderr line, ``flowaudit: error: …``, naming
    ``fragments``; nothing on stdout, no traceback, no key material."""
    assert done.returncode != 0, done
    assert "Traceback" not in done.stderr and "fak_" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("flowaudit: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert done.stdout == ""
    return lines[0]


@pytest.fixture(scope="module")
def held_port() -> Iterator[int]:
    """A loopback port something else listens on for the whole module."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


# -- error paths -------------------------------------------------------------------------------
#: case -> (arguments after `flowaudit`, what the one line must say); {home}, {missing},
#: {empty}, {port} and {held} are filled in per run. These run as subprocesses, as a user
#: runs them; MORE_ERRORS (the same error path, one command each) run in this process.
ERRORS: dict[str, tuple[list[str], list[str]]] = {
    "unknown event": (["console", "--event-id", "no-such-event", "--home", "{home}",
                       "--port", "{port}"],
                      ["no event 'no-such-event' in this home", "flowaudit status"]),
    "port in use": (["console", "--event-id", EVENT, "--home", "{home}", "--port", "{held}"],
                    ["port {held} on 127.0.0.1 is in use", "choose another --port"]),
    "no home": (["console", "--event-id", EVENT, "--home", "{missing}"],
                ["no flowaudit home at '{missing}'", "flowaudit init --home {missing}"]),
    "uninitialised home": (["console", "key", "list", "--home", "{empty}"],
                           ["no flowaudit home at '{empty}'", "flowaudit init"]),
    "speed too slow": (["console", "--event-id", EVENT, "--replay", "--speed", "0",
                        "--home", "{home}", "--port", "{port}"],
                       ["--speed 0", "use 0.1 to 1000"]),
    "revoke an unknown key": (["console", "key", "revoke", "0123456789abcdef",
                               "--home", "{home}"],
                              ["no API key with id '0123456789abcdef'",
                               "flowaudit console key list"]),
    "issue with a bad role": (["console", "key", "issue", "--role", "dj", "--label", "booth",
                               "--event", EVENT, "--home", "{home}"],
                              ["role 'dj'", "artist, scorer, viewer"]),
}
MORE_ERRORS: dict[str, tuple[list[str], list[str]]] = {
    "unknown event to replay": (["console", "--event-id", "no-such-event", "--replay",
                                 "--home", "{home}", "--port", "{port}"],
                                ["no event 'no-such-event' in this home to replay",
                                 "flowaudit status"]),
    "port out of range": (["console", "--event-id", EVENT, "--home", "{home}",
                           "--port", "70000"], ["--port 70000", "0 to 65535"]),
    "no home given, none by default": (["console", "key", "list"],
                                       ["no flowaudit home", "FLOWAUDIT_HOME"]),
    "no event named": (["console", "--home", "{home}"], ["--event-id ID or --event FILE"]),
    "speed too fast": (["console", "--event-id", EVENT, "--replay", "--speed", "5000",
                        "--home", "{home}", "--port", "{port}"],
                       ["--speed 5000", "use 0.1 to 1000"]),
    "speed without replay": (["console", "--event-id", EVENT, "--speed", "4",
                              "--home", "{home}", "--port", "{port}"],
                             ["--speed 4", "add --replay"]),
    "revoke a revoked key": (["console", "key", "revoke", "{revoked}", "--home", "{home}"],
                             ["API key {revoked} was already revoked"]),
    "issue with a bad label": (["console", "key", "issue", "--role", "viewer", "--label",
                                "<script>", "--event", EVENT, "--home", "{home}"],
                               ["key label is 1-64 characters", "no personal details"]),
    "issue with a bad rate": (["console", "key", "issue", "--role", "viewer", "--label",
                               "booth", "--event", EVENT, "--rate", "0", "--home", "{home}"],
                              ["--rate is 0.1-1000"]),
    "issue for a bad event id": (["console", "key", "issue", "--role", "viewer", "--label",
                                  "booth", "--event", "../etc", "--home", "{home}"],
                                 ["event id '../etc' is not an event id"]),
}


def values_of(home: CliHome, held_port: int) -> dict[str, str]:
    (home.root / "empty").mkdir(exist_ok=True)
    return {"home": str(home.settings.home), "missing": str(home.root / "nowhere"),
            "empty": str(home.root / "empty"), "held": str(held_port),
            "port": str(free_port())}


@pytest.fixture(scope="module")
def error_runs(cli_home: CliHome, held_port: int
               ) -> dict[str, tuple[subprocess.CompletedProcess[str], list[str]]]:
    """Every case of ERRORS run once, two processes at a time."""
    values = values_of(cli_home, held_port)

    def run(case: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
        args, fragments = ERRORS[case]
        return (flowaudit(cli_home, *(a.format(**values) for a in args)),
                [f.format(**values) for f in fragments])

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(ERRORS, pool.map(run, ERRORS), strict=True))


@pytest.mark.parametrize("case", list(ERRORS))
def test_an_error_is_one_line_naming_what_is_wrong_and_what_to_do(
        error_runs: dict[str, tuple[subprocess.CompletedProcess[str], list[str]]],
        case: str) -> None:
    done, fragments = error_runs[case]
    one_error_line(done, *fragments)
    assert done.returncode == 1


@pytest.mark.parametrize("case", list(MORE_ERRORS))
def test_more_errors_are_one_line_each(cli_home: CliHome, held_port: int, case: str) -> None:
    values = values_of(cli_home, held_port)
    if "{revoked}" in " ".join(MORE_ERRORS[case][0]):
        runtime = open_runtime(cli_home.settings, datetime.now(UTC))
        try:
            keys = ConsoleKeys(runtime.store)
            issued = keys.issue(role="viewer", label="gone", event_id=EVENT, now=runtime.now)
            keys.revoke(issued.key_id, runtime.now)
        finally:
            runtime.close()
        values["revoked"] = issued.key_id
    args, fragments = MORE_ERRORS[case]
    result = invoke(cli_home, *(a.format(**values) for a in args))
    done = subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)
    one_error_line(done, *(f.format(**values) for f in fragments))
    assert done.returncode == 1


def test_a_speed_that_is_not_a_number_is_a_usage_error(cli_home: CliHome) -> None:
    result = invoke(cli_home, "console", "--event-id", EVENT, "--replay", "--speed", "fast",
                    "--home", str(cli_home.settings.home))
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "Invalid value for '--speed'" in result.stderr and result.stdout == ""


# -- serving -------------------------------------------------------------------------------------
def final_tallies(settings: Settings) -> list[dict[str, object]]:
    """The per-minute tallies the console writes when it shuts down (its lifespan's end)."""
    from sqlalchemy import select

    from retention.models import AuditEntry

    runtime = open_runtime(settings, datetime.now(UTC))
    try:
        with runtime.store.session() as session:
            rows = session.scalars(select(AuditEntry).where(
                AuditEntry.action == "console.refused")).all()
            return [dict(r.details) for r in rows if r.details.get("final")]
    finally:
        runtime.close()


def test_serve_prints_its_address_serves_and_stops_cleanly_on_sigterm(
        cli_home: CliHome) -> None:
    port = free_port()
    before = len(final_tallies(cli_home.settings))
    process = subprocess.Popen(
        [sys.executable, "-m", "flowaudit", "console", "--event-id", EVENT, "--port",
         str(port), "--home", str(cli_home.settings.home)],
        env=cli_home.env, cwd=cli_home.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        assert process.stdout is not None
        first: list[str] = []
        reader = threading.Thread(target=lambda: first.append(process.stdout.readline()),
                                  daemon=True)
        reader.start()
        reader.join(TIMEOUT)  # ends as soon as the line is printed
        assert first and first[0] == (f"console for event {EVENT} (live) at "
                                      f"http://127.0.0.1:{port}/console/{EVENT}\n")
        wait_for_port(port, timeout=TIMEOUT, process=process)
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/v1/openapi.json", timeout=10).status_code == 200
        r = httpx.get(f"{base}/v1/events/{EVENT}/state", timeout=10)
        assert r.status_code == 401 and r.json()["error"]["code"] == "no_key"
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=TIMEOUT)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=TIMEOUT)
    # stopped by the signal, yet on its own terms: exit 0, its last word, a clean shutdown
    assert process.returncode == 0, err
    assert out == "console stopped (SIGTERM)\n" and "Traceback" not in err
    tallies = final_tallies(cli_home.settings)[before:]
    assert [(t["tally"], t["requests"]) for t in tallies] == [("no_key", 1)]


# -- API keys ------------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def key_home(request: pytest.FixtureRequest, tmp_path: Path,
             pg_available: bool) -> Iterator[CliHome]:
    with database(str(request.param), pg_available) as db_url:
        settings = new_home(tmp_path / "home", db_url)
        yield CliHome(settings, tmp_path, _env(tmp_path))


def stored_digests(settings: Settings) -> dict[str, str]:
    from sqlalchemy import select

    from retention.models import ConsoleKey

    runtime = open_runtime(settings, datetime.now(UTC))
    try:
        with runtime.store.session() as session:
            return {r.id: r.secret_sha256 for r in session.scalars(select(ConsoleKey))}
    finally:
        runtime.close()


def test_key_issue_shows_the_key_once_list_never_and_revoke_ends_it(key_home: CliHome) -> None:
    home = ["--home", str(key_home.settings.home)]
    issue = ["console", "key", "issue", "--event", EVENT, *home]
    with ThreadPoolExecutor(max_workers=2) as pool:  # as a user runs it: two processes
        text_run, json_run = pool.map(lambda extra: flowaudit(key_home, *issue, *extra), [
            ["--role", "scorer", "--label", "acme scoring"],
            ["--role", "artist", "--label", "booth 1", "--format", "json"]])
    assert text_run.returncode == 0, text_run.stderr
    scorer_key = text_run.stdout.strip()
    assert KEY_RE.fullmatch(scorer_key) and text_run.stdout.count("\n") == 1
    scorer = re.fullmatch(r"key id ([0-9a-f]{16}): scorer for event ev-cli "
                          r"\(acme scoring\); shown once\n", text_run.stderr)
    assert scorer is not None and scorer_key not in text_run.stderr
    scorer_id = scorer[1]
    assert json_run.returncode == 0, json_run.stderr
    artist = json.loads(json_run.stdout)
    assert KEY_RE.fullmatch(artist["key"]) and artist["role"] == "artist"
    assert artist["label"] == "booth 1" and artist["event"] == EVENT
    # the store has each key's SHA-256 under its id, and the key itself nowhere
    digests = stored_digests(key_home.settings)
    assert digests == {scorer_id: hashlib.sha256(scorer_key.encode()).hexdigest(),
                       artist["key_id"]: hashlib.sha256(artist["key"].encode()).hexdigest()}

    listed, listed_json = (invoke(key_home, "console", "key", "list", *home, *extra)
                           for extra in ([], ["--format", "json"]))
    for run in (listed, listed_json):
        assert run.exit_code == 0, run.output
        assert "fak_" not in run.output
    lines = listed.stdout.splitlines()
    assert lines[-1] == "2 key(s)" and len(lines) == 3
    assert any(line.startswith(scorer_id) and "acme scoring" in line and line.endswith("live")
               for line in lines)
    rows = {r["key_id"]: r for r in json.loads(listed_json.stdout)}
    assert set(rows) == set(digests) and rows[artist["key_id"]]["role"] == "artist"
    assert all("key" not in r and r["revoked_at"] is None for r in rows.values())

    revoked = invoke(key_home, "console", "key", "revoke", scorer_id, *home)
    assert revoked.exit_code == 0, revoked.output
    assert revoked.stdout == f"revoked key {scorer_id} (scorer, acme scoring)\n"
    after = invoke(key_home, "console", "key", "list", "--event", EVENT, *home)
    assert [line.endswith("live") for line in after.stdout.splitlines()[:-1]] == [
        not line.startswith(scorer_id) for line in after.stdout.splitlines()[:-1]]
    assert f"{scorer_id}" in after.stdout and "  revoked 20" in after.stdout
    # the revoked key is refused, the other one is not
    runtime = open_runtime(key_home.settings, datetime.now(UTC))
    try:
        keys = ConsoleKeys(runtime.store)
        assert keys.authenticate(f"Bearer {artist['key']}").role == "artist"
        with pytest.raises(KeyRefused, match="was revoked"):
            keys.authenticate(f"Bearer {scorer_key}")
    finally:
        runtime.close()


def test_the_list_table_aligns_its_columns_and_counts_its_rows(
        capsys: pytest.CaptureFixture[str]) -> None:
    print_table([["a1", "ev", "scorer", state_of(None)],
                 ["b", "event-2", "artist", state_of("2026-06-21T20:00:00+00:00")]], "key")
    assert capsys.readouterr().out.splitlines() == [
        "a1  ev       scorer  live",
        "b   event-2  artist  revoked 2026-06-21T20:00:00+00:00",
        "2 key(s)"]
    print_table([], "token")
    assert capsys.readouterr().out == "0 token(s)\n"
