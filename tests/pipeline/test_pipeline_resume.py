"""Interrupted runs: detected, shown, refused when ambiguous, resumed or left for a new run.

In-process, on both backends. The interruption is a Ctrl-C raised by the source at a window
(the pipeline's own abort path marks the run), or the rows a killed process leaves (a run that
says ``running`` with no live process holding its lock), written through the store's API.
``tests/crash/test_crash_run_event.py`` kills the real command with ``kill -9``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from pipeline_helpers import SET_START, CtrlC
from sqlalchemy import select
from typer.testing import CliRunner

from audit.checks import CheckContext, run_checks
from audit.log.checkpoints import checkpoint_after_command
from audit.reports import ReportContext, build_report
from flowaudit.cli import app
from flowaudit.runtime import Runtime
from pipeline import load_event, run_event, synthetic_for
from pipeline.event import EventSpec
from pipeline.frames import FrameSource
from pipeline.run import RunSummary
from pipeline.wavdir import WavDirectory
from pipeline.wavout import write_wavs
from retention.errors import InputError
from retention.ground.actions import Action
from retention.models import AuditEntry, Decision
from retention.policy import Policy, load_policy
from retention.store import RUN_FINISHED, RUN_INTERRUPTED, RUN_RUNNING, EncryptedStore

SMALL = {"capture__pre_roll": "30s", "capture__post_roll": "30s",
         "event__ends": SET_START + timedelta(minutes=3),
         "selection__decision_every": "30s",
         "wristbands__generate": {"count": 10, "seed": 5, "staff": 1, "opted_out": 0.1,
                                  "withdrawn": 0.1, "late_arrivals": 0.2}}
CHECK_AT = SET_START + timedelta(hours=2)
runner = CliRunner()


@pytest.fixture
def small(write_event: Callable[..., Path]) -> EventSpec:
    return load_event(write_event(**SMALL))


@pytest.fixture
def spotify() -> Policy:
    return load_policy("spotify-2026")  # keeps raw audio and requests: more to compare


def _go(store: EncryptedStore, event: EventSpec, policy: Policy, source: FrameSource,
        **options: Any) -> RunSummary:
    """``run_event`` as ``run-event --source synth`` calls it (the label is part of the plan)."""
    options.setdefault("source_label", "synth")
    return run_event(store, event, policy, source, **options)


def _stored(runtime: Runtime, event_id: str) -> Counter[tuple[Any, ...]]:
    """Everything a run stored for an event, decrypted, as a multiset (duplicates count)."""
    store = runtime.store
    out: Counter[tuple[Any, ...]] = Counter()
    for raw in store.iter_raw(event_id=event_id, now=CHECK_AT):
        out[("raw", raw.pseudonym, raw.start_at, raw.speech_frames, raw.pcm)] += 1
    for meta in store.iter_metadata(event_id=event_id, now=CHECK_AT):
        payload = json.dumps(meta.payload, sort_keys=True)
        out[("meta", meta.kind, meta.pseudonym, meta.start_at, meta.anonymised, payload)] += 1
    with store.session() as session:
        for d in session.scalars(select(Decision).where(Decision.event_id == event_id)):
            out[("decision", d.decided_at, d.track_id, d.crowd_sentiment, d.adaptive_flow,
                 d.artist_override, json.dumps(d.inputs, sort_keys=True),
                 json.dumps(d.parameters, sort_keys=True), d.explanation)] += 1
    return out


def _actions(runtime: Runtime, action: Action) -> int:
    with runtime.store.session() as session:
        return len(session.scalars(select(AuditEntry.seq)
                                   .where(AuditEntry.action == action)).all())


def _findings(runtime: Runtime, event_id: str) -> list[Any]:
    ctx = CheckContext(runtime=runtime, policy=load_policy("spotify-2026"), now=CHECK_AT,
                       as_of=CHECK_AT.date(), event_id=event_id)
    return run_checks(ctx, only=["interrupted-run"])


def _verify(runtime: Runtime) -> None:
    """Sign the head as every CLI command does at its end, then `flowaudit audit verify`."""
    checkpoint_after_command(runtime)
    result = runner.invoke(app, ["audit", "verify", "--home", str(runtime.settings.home)])
    assert result.exit_code == 0, result.output


_VOLATILE = {"event_id", "run_id", "wall_seconds", "cpu_seconds", "latency_ms", "window_ms",
             "replayed_windows"}


def test_resume_after_ctrl_c_stores_what_an_uninterrupted_run_stores(
    runtime: Runtime, small: EventSpec, spotify: Policy
) -> None:
    store = runtime.store
    whole = _go(store, small, spotify, synthetic_for(small), event_id="whole")
    cut_at = 13  # mid score period (5 windows each), after a decision
    with pytest.raises(KeyboardInterrupt):
        _go(store, small, spotify, CtrlC(synthetic_for(small), cut_at), event_id="cut")
    (run,) = store.runs("cut")
    assert (run.status, run.windows_done, run.windows, run.recorded) == (
        RUN_INTERRUPTED, cut_at, whole.windows, True)
    assert _stored(runtime, "cut") and _stored(runtime, "cut") != _stored(runtime, "whole")
    assert [f.severity for f in _findings(runtime, "cut")] == ["warning"]
    assert not _findings(runtime, "whole")

    with pytest.raises(InputError, match=r"run \d+ was interrupted after 13 of \d+ windows "
                       r"committed; continue it with --resume, or start a new run with --new-run"):
        _go(store, small, spotify, synthetic_for(small), event_id="cut")
    resumed = _go(store, small, spotify, synthetic_for(small), event_id="cut", mode="resume")

    assert resumed.run_id == run.run_id and resumed.replayed_windows == cut_at
    assert _stored(runtime, "cut") == _stored(runtime, "whole")  # none twice, none lost
    same = {k: v for k, v in resumed.to_dict(timeline=True).items() if k not in _VOLATILE}
    assert same == {k: v for k, v in whole.to_dict(timeline=True).items() if k not in _VOLATILE}
    (done,) = store.runs("cut")
    assert (done.status, done.windows_done) == (RUN_FINISHED, whole.windows)
    assert _actions(runtime, Action.RUN_RESUME) == 1
    assert not _findings(runtime, "cut")  # resumed to its end: nothing left to warn about
    _verify(runtime)


def test_a_wav_directory_resumes_like_the_synthetic_crowd(
    pipeline_runtime: Runtime, small: EventSpec, spotify: Policy, tmp_path: Path
) -> None:
    """WAV files replay: the resumed run stores exactly what an uninterrupted one does, and its
    last window (shorter than the others: 100 s is not a whole number of 6 s windows) too."""
    folder = tmp_path / "wavs"
    write_wavs(synthetic_for(small), folder, start_at=small.capture_starts,
               duration=timedelta(seconds=100))
    store = pipeline_runtime.store

    def wav(source: FrameSource, event_id: str, **options: Any) -> RunSummary:
        return _go(store, small, spotify, source, event_id=event_id, source_label="wav",
                   **options)

    whole = wav(WavDirectory(folder), "whole")
    with pytest.raises(KeyboardInterrupt):
        wav(CtrlC(WavDirectory(folder), 9), "cut")
    resumed = wav(WavDirectory(folder), "cut", mode="resume")
    assert resumed.replayed_windows == 9 and resumed.windows == whole.windows == 17
    assert _stored(pipeline_runtime, "cut") == _stored(pipeline_runtime, "whole")


def test_a_run_whose_process_died_reads_as_interrupted_until_a_new_run_records_it(
    runtime: Runtime, small: EventSpec, spotify: Policy
) -> None:
    store = runtime.store
    with store.transaction(small.capture_starts, actor="pipeline") as tx:  # what kill -9 leaves
        tx.register_event("died", name=small.name, starts_at=small.starts_at,
                          ends_at=small.ends_at, policy_name=spotify.name,
                          policy_sha256=spotify.sha256)
        dead = tx.start_run("died", policy_name=spotify.name, policy_sha256=spotify.sha256,
                            source="synth", windows=40, window_seconds=6.0, scorer="builtin",
                            wristbands=10, plan={"start": small.capture_starts.isoformat()})
        tx.record_progress(dead, windows_done=7)

    (run,) = store.runs("died")
    assert (run.status, run.recorded, run.windows_done) == (RUN_INTERRUPTED, False, 7)
    (finding,) = _findings(runtime, "died")
    assert finding.evidence["run"] == dead and "stopped after 7 of 40 windows" in finding.message

    with store.run_lock("died") as lock:  # a live process holding the lock: running, no finding
        assert lock.acquire()
        assert store.runs("died")[0].status == RUN_RUNNING
        assert not _findings(runtime, "died")
        with pytest.raises(InputError, match="being run by another process right now"):
            _go(store, small, spotify, synthetic_for(small), event_id="died", mode="new-run",
                lock_wait=0)

    before = _actions(runtime, Action.RUN_INTERRUPTED)
    with pytest.raises(InputError, match="--resume.*--new-run"):
        _go(store, small, spotify, synthetic_for(small), event_id="died")
    assert _actions(runtime, Action.RUN_INTERRUPTED) == before + 1  # the refusal recorded it
    assert store.runs("died")[0].recorded

    again = _go(store, small, spotify, synthetic_for(small), event_id="died", mode="new-run")
    old, new = store.runs("died")
    assert (old.run_id, old.status) == (dead, RUN_INTERRUPTED)  # stays visible
    assert (new.run_id, new.status) == (again.run_id, RUN_FINISHED) and new.run_id != dead
    (finding,) = _findings(runtime, "died")
    assert finding.evidence["later_runs"] == [new.run_id]

    ctx = ReportContext.open(runtime, now=CHECK_AT, event_id="died")
    shown = [v for v in build_report("ai-act", ctx).data["verdicts"]
             if v["rule_id"] == "interrupted-run"]
    assert {(v["section"], v["severity"]) for v in shown} == {("logs", "warning")}
    _verify(runtime)


def test_ambiguous_or_impossible_follow_ups_are_refused(
    runtime: Runtime, small: EventSpec, spotify: Policy
) -> None:
    store = runtime.store

    def run(event_id: str, mode: str, seed: int | None = None) -> Any:
        return _go(store, small, spotify, synthetic_for(small, seed=seed), event_id=event_id,
                   mode=mode)

    for mode in ("resume", "new-run"):
        with pytest.raises(InputError, match=f"--{mode}: event 'nothing' has no run in this "
                           f"home to follow; run it without --{mode}"):
            run("nothing", mode)
    with pytest.raises(KeyboardInterrupt):
        _go(store, small, spotify, CtrlC(synthetic_for(small), 4), event_id="cut")
    with pytest.raises(InputError, match="runs under spotify-2026 and this command's policy"):
        _go(store, small, load_policy("tiktok-2026"), synthetic_for(small), event_id="cut",
            mode="resume")
    with pytest.raises(InputError, match=r"started with --seed = \d+, this command gives 99"):
        run("cut", "resume", seed=99)
    with pytest.raises(InputError, match="the number of windows"):
        _go(store, small, spotify, synthetic_for(small), event_id="cut", mode="resume",
            duration=timedelta(minutes=1))
    assert store.runs("cut")[0].status == RUN_INTERRUPTED  # a refusal changes nothing
    run("cut", "resume")
    with pytest.raises(InputError, match="finished; nothing to resume"):
        run("cut", "resume")
    with pytest.raises(OSError):  # a failed run may be resumed too, once the cause is fixed
        _go(store, small, spotify, CtrlC(synthetic_for(small), 8, OSError), event_id="broke")
    with pytest.raises(InputError, match=r"run \d+ failed after 8 of \d+ windows committed"):
        run("broke", "start")
    assert run("broke", "resume").replayed_windows == 8
    for mode in ("start", "new-run"):
        with pytest.raises(InputError, match="already ran in this home"):
            run("cut", mode)
    with pytest.raises(InputError, match="run mode 'later'"):
        run("cut", "later")


def test_the_cli_refuses_both_options_and_status_shows_the_interrupted_run(
    runtime: Runtime, small: EventSpec, spotify: Policy, write_event: Callable[..., Path]
) -> None:
    with pytest.raises(KeyboardInterrupt):
        _go(runtime.store, small, spotify, CtrlC(synthetic_for(small), 6), event_id="cut")
    checkpoint_after_command(runtime)
    home = ["--home", str(runtime.settings.home)]
    both = runner.invoke(app, ["run-event", "--event", str(write_event(**SMALL)), "--event-id",
                               "cut", "--policy", "spotify-2026", "--resume", "--new-run", *home])
    assert both.exit_code == 1
    assert both.stderr == "flowaudit: error: give --resume or --new-run, not both\n"

    text = runner.invoke(app, ["status", *home])
    assert text.exit_code == 0, text.output
    assert "runs               1 (interrupted 1)" in text.stdout
    assert "cut: interrupted after 6 of" in text.stdout and "--resume" in text.stdout
    data = json.loads(runner.invoke(app, ["status", "--format", "json", *home]).stdout)
    assert [(r["event"], r["status"], r["windows_done"]) for r in data["runs"]] == [
        ("cut", "interrupted", 6)]

    resumed = runner.invoke(app, ["run-event", "--event", str(write_event(**SMALL)),
                                  "--event-id", "cut", "--policy", "spotify-2026", "--resume",
                                  "--format", "json", *home])
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["replayed_windows"] == 6
    verify = runner.invoke(app, ["audit", "verify", *home])
    assert verify.exit_code == 0, verify.output
