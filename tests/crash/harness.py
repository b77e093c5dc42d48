"""A kill -9 harness: kill a real CLI command at a random moment, rerun it, compare end states.

One trial copies a prepared home, starts ``flowaudit ARGV`` on the copy, sends it SIGKILL after
a delay drawn from a seeded RNG across the command's measured duration, reruns the same command
to completion and compares the end state with that of an uninterrupted run on another copy of
the same home. A command is crash-safe if every trial ends identical::

    from tests.crash.harness import Launcher, crash_trials, new_home

    with Launcher() as launcher:
        template = new_home(tmp / "template", "sqlite")      # or "postgres": its own database
        ...seed it...
        summary = crash_trials(
            launcher,
            ["purge", "--home", "{home}", "--now", "2026-06-25T00:00Z", "--format", "json"],
            template,
            end_state,            # (home, last run) -> a comparable dict; see tests/crash/scenarios.py
            trials=5,
            seed=1,
            workdir=tmp / "trials",
        )
    assert summary.differing == summary.crashed == 0, summary.report()

``{home}`` in ARGV is replaced by each copy's directory; a PostgreSQL copy is a database cloned
from the template's (``CREATE DATABASE … TEMPLATE``) and its home's config names it, so the same
ARGV serves both backends. Commands run through a fork server (:mod:`tests.crash._zygote`) that
has imported the CLI once, so the kill lands in the command's work, not in interpreter start-up.
The end-state function should normalise what legitimately differs (times of checkpoints, ids of
re-stored records) and keep everything a user or auditor relies on.

Counts (``CrashSummary``): ``identical`` and ``differing`` end states after the rerun, ``crashed``
(the rerun itself failed), ``killed`` (SIGKILL landed while the command was still running).
"""

from __future__ import annotations

import json
import os
import random
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from flowaudit.config import Settings, resolve_settings
from flowaudit.runtime import Runtime, initialise_home, open_runtime

__all__ = [
    "CLEAN_ENV",
    "PG_BASE_URL",
    "Home",
    "Finished",
    "Launcher",
    "Trial",
    "CrashSummary",
    "EndState",
    "new_home",
    "copy_home",
    "drop_home",
    "Scenario",
    "crash_trials",
    "run_scenario",
    "differences",
]

ROOT = Path(__file__).resolve().parents[2]
PG_BASE_URL = os.environ.get(
    "FLOWAUDIT_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
#: The environment every command and every helper sees: no FLOWAUDIT_* from the caller, and
#: single-threaded numeric libraries (2 shared cores; a forked child needs no thread pools).
CLEAN_ENV = {
    **{k: v for k, v in os.environ.items() if not k.startswith("FLOWAUDIT_")},
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
_DB_PREFIX = "fa_crash_"


# -- homes ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Home:
    """A data home: its directory and, on PostgreSQL, the database its config names."""

    path: Path
    backend: str  # "sqlite" | "postgres"
    database: str | None = None

    def settings(self) -> Settings:
        return resolve_settings(self.path, None, CLEAN_ENV)

    def open(self, now: datetime) -> Runtime:
        """The home's runtime, as a command would open it (close it when done)."""
        return open_runtime(self.settings(), now, CLEAN_ENV)


def _pg_url(database: str) -> str:
    return make_url(PG_BASE_URL).set(database=database).render_as_string(hide_password=False)


def _admin(statement: str) -> None:
    engine = create_engine(PG_BASE_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


def _new_database(template: str | None = None) -> str:
    name = f"{_DB_PREFIX}{uuid.uuid4().hex[:16]}"
    clause = f' TEMPLATE "{template}"' if template else ""
    _admin(f'CREATE DATABASE "{name}"{clause}')
    return name


def new_home(path: Path, backend: str) -> Home:
    """An initialised, migrated, empty home; on PostgreSQL in a database of its own."""
    if backend == "sqlite":
        initialise_home(path, environ=CLEAN_ENV)
        return Home(path, backend)
    if backend != "postgres":
        raise ValueError(f"backend {backend!r}; use sqlite or postgres")
    database = _new_database()
    initialise_home(path, db_url=_pg_url(database), environ=CLEAN_ENV)
    return Home(path, backend, database)


def copy_home(source: Home, dest: Path) -> Home:
    """An exact copy: files (keys, key store, SQLite database) and, on PostgreSQL, the database.

    The source must be closed (no open connection: PostgreSQL copies only an idle template).
    """
    shutil.copytree(source.path, dest)
    if source.database is None:
        return Home(dest, source.backend)
    database = _new_database(template=source.database)
    config = next(
        p for p in dest.iterdir() if p.suffix == ".toml" and "database_url" in p.read_text()
    )
    config.write_text(
        re.sub(
            r'^database_url = ".*"$',
            f'database_url = "{_pg_url(database)}"',
            config.read_text(),
            flags=re.M,
        )
    )
    return Home(dest, source.backend, database)


def drop_home(home: Home, *, keep_files: bool = False) -> None:
    """Remove a home (its database too); ``keep_files`` leaves the directory to inspect."""
    if home.database is not None:
        _admin(f'DROP DATABASE IF EXISTS "{home.database}" WITH (FORCE)')
    if not keep_files:
        shutil.rmtree(home.path, ignore_errors=True)


# -- running commands -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Finished:
    """One command run: its exit status (negative: killed by that signal), output, duration."""

    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL


@dataclass(frozen=True)
class _Running:
    pid: int
    started: float
    out: Path
    err: Path


class Launcher:
    """The fork server, as a context manager: ``run`` to completion, or ``start``/``kill``/``wait``.

    Only processes it started are ever signalled, by their pid.
    """

    def __init__(self, ready_timeout: float = 180.0) -> None:
        self._timeout = ready_timeout
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> Launcher:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.crash._zygote"],
            cwd=ROOT,
            env=CLEAN_ENV,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self._read(self._timeout)
        if line.strip() != "ready":
            self.__exit__(None, None, None)
            raise RuntimeError(f"crash fork server did not start: {line!r}")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()  # end of requests: the server exits
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()  # our own server, by its Popen handle
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()

    def _read(self, timeout: float) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        ready, _, _ = select.select([self._proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError(f"crash fork server silent for {timeout:.0f} s")
        return self._proc.stdout.readline()

    def _ask(self, request: dict[str, Any], timeout: float = 600.0) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        line = self._read(timeout)
        if not line:
            raise RuntimeError("crash fork server exited")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def start(
        self, argv: Sequence[str], out: Path, env: Mapping[str, str] | None = None
    ) -> _Running:
        """Start ``flowaudit ARGV``; its stdout/stderr go to ``out``.out / ``out``.err."""
        paths = out.with_suffix(".out"), out.with_suffix(".err")
        reply = self._ask(
            {
                "op": "run",
                "argv": list(argv),
                "env": dict(CLEAN_ENV if env is None else env),
                "cwd": str(ROOT),
                "stdout": str(paths[0]),
                "stderr": str(paths[1]),
            }
        )
        return _Running(int(reply["pid"]), time.monotonic(), *paths)

    @staticmethod
    def kill(running: _Running) -> None:
        """SIGKILL; harmless once the command has exited (it stays unreaped until ``wait``)."""
        os.kill(running.pid, signal.SIGKILL)

    def wait(self, running: _Running) -> Finished:
        reply = self._ask({"op": "wait", "pid": running.pid})
        seconds = time.monotonic() - running.started
        return Finished(
            int(reply["returncode"]),
            running.out.read_text(errors="replace"),
            running.err.read_text(errors="replace"),
            seconds,
        )

    def run(self, argv: Sequence[str], out: Path, env: Mapping[str, str] | None = None) -> Finished:
        """Run ``flowaudit ARGV`` to completion."""
        return self.wait(self.start(argv, out, env))


# -- trials ---------------------------------------------------------------------------------------

#: ``end_state(home, last_run)``: what must be the same after a crash and a rerun as after one
#: uninterrupted run. Opened and closed by the function; must not change the home.
EndState = Callable[[Home, Finished], Mapping[str, Any]]


@dataclass
class Trial:
    index: int
    delay: float
    killed: bool  # SIGKILL landed while the command was running
    rerun: Finished
    differences: list[str] = field(default_factory=list)

    @property
    def crashed(self) -> bool:
        return self.rerun.returncode != 0

    @property
    def identical(self) -> bool:
        return not self.crashed and not self.differences


@dataclass
class CrashSummary:
    """The outcome of a series of trials of one command on one backend."""

    name: str
    backend: str
    reference_seconds: float
    trials: list[Trial] = field(default_factory=list)

    @property
    def identical(self) -> int:
        return sum(t.identical for t in self.trials)

    @property
    def differing(self) -> int:
        return sum(not t.crashed and bool(t.differences) for t in self.trials)

    @property
    def crashed(self) -> int:
        return sum(t.crashed for t in self.trials)

    @property
    def killed(self) -> int:
        return sum(t.killed for t in self.trials)

    def counts(self) -> dict[str, int]:
        return {
            "trials": len(self.trials),
            "identical": self.identical,
            "differing": self.differing,
            "crashed": self.crashed,
            "killed": self.killed,
        }

    def report(self) -> str:
        """The counts, then what went wrong in each trial that was not identical."""
        lines = [f"{self.name} on {self.backend}: {self.counts()}"]
        for t in self.trials:
            if t.crashed:
                tail = t.rerun.stderr.strip().splitlines()[-3:]
                lines.append(
                    f"  trial {t.index} (kill at {t.delay:.3f} s): rerun exit "
                    f"{t.rerun.returncode}: {' | '.join(tail)}"
                )
            elif t.differences:
                lines.append(
                    f"  trial {t.index} (kill at {t.delay:.3f} s): " + "; ".join(t.differences)
                )
        return "\n".join(lines)


def differences(
    reference: Mapping[str, Any], state: Mapping[str, Any], limit: int = 160
) -> list[str]:
    """One short line per key whose value differs."""
    out = []
    for key in sorted(set(reference) | set(state)):
        want, got = reference.get(key), state.get(key)
        if want != got:
            a, b = repr(want), repr(got)
            at = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), 0)
            out.append(f"{key}: expected {_short(a, at, limit)}, got {_short(b, at, limit)}")
    return out


def _short(text_: str, at: int, limit: int) -> str:
    """``limit`` characters of ``text_`` around ``at``, where the two values first differ."""
    if len(text_) <= limit:
        return text_
    start = max(0, min(at - limit // 4, len(text_) - limit))
    head = "…" if start else ""
    tail = "…" if start + limit < len(text_) else ""
    return head + text_[start : start + limit] + tail


def _argv(argv: Sequence[str], home: Home) -> list[str]:
    return [arg.replace("{home}", str(home.path)) for arg in argv]


def crash_trials(
    launcher: Launcher,
    argv: Sequence[str],
    template: Home,
    end_state: EndState,
    *,
    trials: int,
    seed: int,
    workdir: Path,
    name: str | None = None,
) -> CrashSummary:
    """Run ``trials`` kill -9 trials of ``flowaudit ARGV`` against copies of ``template``.

    The reference is an uninterrupted run on a copy, made twice (both must end alike); the
    shorter duration bounds the kill delays (uniform, from ``random.Random(seed)``). Each trial: copy, start, kill, wait, rerun to
    completion, compare ``end_state``. Copies are removed afterwards, except the directory of a
    trial that was not identical (its PostgreSQL database is always dropped).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    references: list[tuple[Finished, Mapping[str, Any]]] = []
    for index in range(2):  # twice: the end state must not depend on timing to begin with
        reference_home = copy_home(template, workdir / f"reference-{index}")
        try:
            first = launcher.run(_argv(argv, reference_home), workdir / f"reference-{index}")
            if first.returncode != 0:
                raise AssertionError(
                    f"the uninterrupted run failed ({first.returncode}): {first.stderr}"
                )
            references.append((first, end_state(reference_home, first)))
        finally:
            drop_home(reference_home)
    reference = references[0][1]
    unstable = differences(reference, references[1][1])
    if unstable:
        raise AssertionError("two uninterrupted runs ended differently: " + "; ".join(unstable))
    first = min((run for run, _ in references), key=lambda run: run.seconds)
    summary = CrashSummary(name or argv[0], template.backend, first.seconds)
    rng = random.Random(seed)
    for index in range(trials):
        home = copy_home(template, workdir / f"trial-{index}")
        keep = False
        try:
            delay = rng.uniform(0.0, first.seconds)
            running = launcher.start(_argv(argv, home), workdir / f"trial-{index}-killed")
            time.sleep(max(0.0, delay - (time.monotonic() - running.started)))
            launcher.kill(running)
            killed = launcher.wait(running)
            rerun = launcher.run(_argv(argv, home), workdir / f"trial-{index}-rerun")
            trial = Trial(index, delay, killed.killed, rerun)
            if not trial.crashed:
                trial.differences = differences(reference, end_state(home, rerun))
            keep = not trial.identical
            summary.trials.append(trial)
        finally:
            drop_home(home, keep_files=keep)
    return summary


@dataclass(frozen=True)
class Scenario:
    """A command to crash-test: how to prepare its home, its ARGV, and its end state."""

    name: str
    prepare: Callable[[Path, str], Home]
    argv: Sequence[str]
    end_state: EndState


def run_scenario(
    launcher: Launcher, scenario: Scenario, backend: str, *, trials: int, seed: int, workdir: Path
) -> CrashSummary:
    """Prepare the scenario's template home, run the trials, drop the template."""
    template = scenario.prepare(workdir / "template", backend)
    try:
        return crash_trials(
            launcher,
            scenario.argv,
            template,
            scenario.end_state,
            trials=trials,
            seed=seed,
            workdir=workdir,
            name=scenario.name,
        )
    finally:
        drop_home(template)
