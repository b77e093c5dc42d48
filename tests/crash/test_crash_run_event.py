"""kill -9 of the real `flowaudit run-event`, then `--resume` (or `--new-run`): issue 14.

Each trial copies a fresh home, starts the command through the crash harness's fork server,
SIGKILLs it after a delay drawn from a seeded RNG across the uninterrupted run's duration, then
follows the documented way on: `--resume` if the run was left interrupted, the same command if
nothing had been committed yet, nothing if it had finished. The end state must equal an
uninterrupted run's on another copy of the same home: the same stored raw segments, scores,
crowd aggregates, requests and decisions per wristband (decrypted, as multisets, so a window
stored twice shows), the same data entries in the audit log, one finished run, and
`audit verify` passing. `--new-run` must leave the killed run interrupted and visible.

``FLOWAUDIT_CRASH_TRIALS`` (default 3) and ``FLOWAUDIT_CRASH_SEED`` set the trials per backend,
so ``make crash`` can run the full matrix; the counts are printed either way.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from audit.log.checkpoints import load_signer
from audit.log.verify import verify_log
from pipeline.event import default_event_file
from retention.ground.actions import Action
from retention.models import AuditEntry, Decision, EventRun
from retention.store import RUN_FINISHED, RUN_INTERRUPTED

from .harness import (
    CrashSummary,
    Finished,
    Home,
    Launcher,
    Trial,
    copy_home,
    differences,
    drop_home,
    new_home,
)

TRIALS = int(os.environ.get("FLOWAUDIT_CRASH_TRIALS", "3"))
SEED = int(os.environ.get("FLOWAUDIT_CRASH_SEED", "14"))
SET_START = datetime(2026, 6, 21, 20, 0, tzinfo=UTC)
READ_AT = SET_START + timedelta(hours=2)  # every stored record is still readable
EVENT_ID = "crash-set"
#: run bookkeeping a resumed run adds to the log; every data entry must match one for one
_BOOKKEEPING = {Action.RUN_INTERRUPTED, Action.RUN_RESUME, Action.RUN_ABORT}
#: summary values that describe the process, not the data
_VOLATILE = {"wall_seconds", "cpu_seconds", "latency_ms", "window_ms", "replayed_windows"}


def _event_file(path: Path) -> Path:
    """A 5-minute capture of 12 wristbands (consent gaps, staff, a request) under a 4-minute set."""
    demo = default_event_file().parent
    path.write_text(
        f"""\
[event]
id = "{EVENT_ID}"
name = "Crash set"
venue = "Test venue"
starts = 2026-06-21T20:00:00Z
ends = 2026-06-21T20:04:00Z
[capture]
pre_roll = "30s"
post_roll = "30s"
window = "6s"
score_every = "30s"
synthetic_script = "dip"
seed = 11
[selection]
catalogue = "{demo / "catalogue.csv"}"
decision_every = "30s"
[artist]
name = "Nova Lumen"
veto = "{demo / "artist" / "veto.txt"}"
pinned = "{demo / "artist" / "pinned.txt"}"
overrides = "{demo / "artist" / "overrides.toml"}"
[wristbands.generate]
count = 12
seed = 5
staff = 1
opted_out = 0.1
withdrawn = 0.1
late_arrivals = 0.2
[[requests]]
serial = "WB-000003"
at = 2026-06-21T20:01:00Z
text = "play Ciel levant please"
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def template(tmp_path: Path, crash_backend: str) -> Iterator[Home]:
    home = new_home(tmp_path / "template", crash_backend)
    yield home
    drop_home(home)


def _argv(home: Home, event: Path, *extra: str) -> list[str]:
    return [
        "run-event",
        "--home",
        str(home.path),
        "--event",
        str(event),
        "--policy",
        "spotify-2026",
        "--format",
        "json",
        *extra,
    ]


def _verified(home: Home) -> str:
    runtime = home.open(READ_AT)
    try:
        signer = load_signer(Path(runtime.settings.signing_key_file))
        assert signer is not None
        report = verify_log(runtime.engine, signer.public_key)
    finally:
        runtime.close()
    first = report.first_problem
    return "ok" if report.ok else f"{first.kind} at seq {first.seq}" if first else "failed"


def _runs(home: Home) -> list[tuple[str, int, int | None]]:
    runtime = home.open(READ_AT)
    try:
        return [(r.status, r.windows_done, r.windows) for r in runtime.store.runs(EVENT_ID)]
    finally:
        runtime.close()


def end_state(home: Home) -> dict[str, Any]:
    """What an auditor and the DJ rely on, decrypted; record ids and timings left out."""
    runtime = home.open(READ_AT)
    store = runtime.store
    try:
        stored: Counter[tuple[Any, ...]] = Counter()
        per_wristband: Counter[tuple[str, str]] = Counter()
        for raw in store.iter_raw(event_id=EVENT_ID, now=READ_AT):
            digest = hashlib.sha256(raw.pcm).hexdigest()
            stored["raw", raw.pseudonym, raw.start_at.isoformat(), raw.speech_frames, digest] += 1
            per_wristband[str(raw.pseudonym)[:12], "raw"] += 1
        for meta in store.iter_metadata(event_id=EVENT_ID, now=READ_AT):
            stored[
                "meta",
                meta.kind,
                meta.pseudonym,
                meta.start_at.isoformat(),
                meta.anonymised,
                json.dumps(meta.payload, sort_keys=True),
            ] += 1
            per_wristband[str(meta.pseudonym)[:12], meta.kind] += 1
        with store.session() as session:
            for d in session.scalars(select(Decision).where(Decision.event_id == EVENT_ID)):
                stored[
                    "decision",
                    d.decided_at.isoformat(),
                    d.track_id,
                    d.crowd_sentiment,
                    d.adaptive_flow,
                    d.artist_override,
                    json.dumps(d.inputs, sort_keys=True),
                    json.dumps(d.parameters, sort_keys=True),
                    d.explanation,
                ] += 1
            actions = Counter(
                a for a in session.scalars(select(AuditEntry.action)) if a not in _BOOKKEEPING
            )
            summaries = [
                r.summary
                for r in session.scalars(select(EventRun).where(EventRun.event_id == EVENT_ID))
            ]
        (run,) = store.runs(EVENT_ID)
        (summary,) = summaries
    finally:
        runtime.close()
    return {
        "records": sorted(map(repr, stored)),
        "stored_twice": sorted(repr(k)[:80] for k, n in stored.items() if n > 1),
        "per_wristband": dict(sorted(per_wristband.items())),
        "audit_actions": dict(sorted(actions.items())),
        "run": (run.status, run.windows_done, run.windows),
        "summary": {
            k: v
            for k, v in summary.items()
            if k not in _VOLATILE and k not in ("interruptions", "resumes")
        },
        "audit_verify": _verified(home),
    }


def _follow_up(launcher: Launcher, home: Home, event: Path, out: Path) -> Finished:
    """What the README says to do after a kill -9, by what `status` would show."""
    runs = _runs(home)
    if not runs:  # killed before the first transaction: nothing was stored, run it again
        return launcher.run(_argv(home, event), out)
    if runs[-1][0] == RUN_INTERRUPTED:
        return launcher.run(_argv(home, event, "--resume"), out)
    # it finished before the kill; if the kill fell between the last commit and the closing
    # signature, the log's tail is unsigned: review it and sign it, as `audit verify` says
    if _verified(home).startswith("unsigned"):
        return launcher.run(
            [
                "audit",
                "anchor",
                "--home",
                str(home.path),
                "--out",
                str(out.with_suffix(".anchor.json")),
                "--allow-unsigned-tail",
            ],
            out,
        )
    return Finished(0, "", "", 0.0)


def test_kill_9_then_resume_ends_as_an_uninterrupted_run(
    launcher: Launcher, template: Home, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    event = _event_file(tmp_path / "event.toml")
    reference_home = copy_home(template, tmp_path / "reference")
    try:
        first = launcher.run(_argv(reference_home, event), tmp_path / "reference")
        assert first.returncode == 0, first.stderr
        reference = end_state(reference_home)
    finally:
        drop_home(reference_home)
    assert reference["run"][0] == RUN_FINISHED and reference["audit_verify"] == "ok"
    assert reference["records"] and not reference["stored_twice"]

    summary = CrashSummary("run-event", template.backend, first.seconds)
    rng = random.Random(SEED)
    interrupted = 0
    # kill moments are drawn across the run's duration; a run that ends before its kill shows
    # the machine got faster than the reference run, so later draws use that shorter span
    horizon = first.seconds
    for index in range(TRIALS):
        home = copy_home(template, tmp_path / f"trial-{index}")
        keep = False
        try:
            delay = rng.uniform(0.0, horizon)
            running = launcher.start(_argv(home, event), tmp_path / f"trial-{index}-killed")
            time.sleep(max(0.0, delay - (time.monotonic() - running.started)))
            launcher.kill(running)
            killed = launcher.wait(running)
            if not killed.killed:
                horizon = min(horizon, killed.seconds)
            runs = _runs(home)
            interrupted += bool(runs) and runs[-1][0] == RUN_INTERRUPTED
            rerun = _follow_up(launcher, home, event, tmp_path / f"trial-{index}-rerun")
            trial = Trial(index, delay, killed.killed, rerun)
            if not trial.crashed:
                trial.differences = differences(reference, end_state(home))
            keep = not trial.identical
            summary.trials.append(trial)
        finally:
            drop_home(home, keep_files=keep)
    with capsys.disabled():
        print(
            f"\n{summary.name} on {summary.backend}: {summary.counts()}, left interrupted "
            f"{interrupted}, uninterrupted run {first.seconds:.2f} s"
        )
    assert summary.identical == TRIALS, summary.report()


def test_kill_9_then_new_run_leaves_the_old_run_interrupted(
    launcher: Launcher, template: Home, tmp_path: Path
) -> None:
    event = _event_file(tmp_path / "event.toml")
    home = copy_home(template, tmp_path / "home")
    try:
        running = launcher.start(_argv(home, event), tmp_path / "killed")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # kill once a few windows are committed
            runs = _runs(home)
            if runs and runs[-1][1] >= 3:
                break
            time.sleep(0.05)
        launcher.kill(running)
        assert launcher.wait(running).killed
        ((status, done, planned),) = _runs(home)
        assert status == RUN_INTERRUPTED and 3 <= done < (planned or 0)

        plain = launcher.run(_argv(home, event), tmp_path / "plain")
        assert plain.returncode == 1 and plain.stdout == ""
        assert plain.stderr == (
            f"flowaudit: error: event '{EVENT_ID}': run 1 was interrupted after {done} of "
            f"{planned} windows committed; continue it with --resume, or start a new run with "
            "--new-run (the old one stays as it is)\n"
        )
        both = launcher.run(_argv(home, event, "--resume", "--new-run"), tmp_path / "both")
        assert (both.returncode, both.stderr) == (
            1,
            "flowaudit: error: give --resume or --new-run, not both\n",
        )

        again = launcher.run(_argv(home, event, "--new-run"), tmp_path / "new")
        assert again.returncode == 0, again.stderr
        assert json.loads(again.stdout)["run_id"] == 2
        assert _runs(home) == [(RUN_INTERRUPTED, done, planned), (RUN_FINISHED, planned, planned)]
        status_out = launcher.run(
            ["status", "--home", str(home.path), "--format", "json"], tmp_path / "status"
        )
        assert [(r["run"], r["status"]) for r in json.loads(status_out.stdout)["runs"]] == [
            (1, RUN_INTERRUPTED),
            (2, RUN_FINISHED),
        ]
        check = launcher.run(
            [
                "audit",
                "check",
                "--home",
                str(home.path),
                "--now",
                READ_AT.isoformat(),
                "--format",
                "json",
            ],
            tmp_path / "check",
        )
        found = [
            f for f in json.loads(check.stdout)["findings"] if f["rule_id"] == "interrupted-run"
        ]
        assert [
            (f["severity"], f["evidence"]["run"], f["evidence"]["later_runs"]) for f in found
        ] == [("warning", 1, [2])]
        assert _verified(home) == "ok"
    finally:
        drop_home(home)
