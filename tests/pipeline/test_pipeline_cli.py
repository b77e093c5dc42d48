"""`flowaudit run-event` and `flowaudit demo-audio` through the real CLI."""

from __future__ import annotations

import json
import wave
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from typer.testing import CliRunner

from flowaudit.cli import app
from flowaudit.config import Settings
from flowaudit.runtime import open_runtime
from pipeline.wavdir import inspect_wav
from retention.errors import InputError
from retention.models import AuditEntry, Event, MetadataRecord, RawSegment

NOW = datetime(2026, 6, 21, 20, 0, tzinfo=UTC)


def invoke(*args: str) -> object:
    return CliRunner().invoke(app, list(args))


def one_error_line(result: object) -> str:
    assert result.exit_code != 0, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flowaudit: error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def counts(home: Settings) -> tuple[int, ...]:
    rt = open_runtime(home, NOW)
    try:
        with rt.store.session() as session:
            return tuple(int(session.scalar(select(func.count()).select_from(m)) or 0)
                         for m in (Event, RawSegment, MetadataRecord, AuditEntry))
    finally:
        rt.close()


def write_wav(path: Path, *, channels: int = 1, width: int = 2, rate: int = 16000,
              seconds: float = 1.0) -> Path:
    rng = np.random.default_rng(0)
    frames = int(rate * seconds)
    data = rng.integers(-2000, 2000, frames * channels * width, dtype=np.int16).tobytes()
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(data[: frames * channels * width])
    return path


def test_run_event_defaults_to_the_bundled_event(pipeline_home: Settings) -> None:
    result = invoke("run-event", "--home", str(pipeline_home.home), "--policy", "tiktok-2026",
                    "--source", "synth:8", "--duration", "30s", "--format", "json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["event_id"] == "fete-2026-republique"
    assert summary["frames_in"] == 8 * 1000 and summary["windows"] == 5
    assert summary["dropped"]["outside_window"] > 0  # the pre-roll is outside the set
    assert summary["raw_segments"] == 0
    assert summary["started_at"] == "2026-06-21T19:51:00+00:00"


def test_run_event_text_summary_and_redacted_requests(pipeline_home: Settings) -> None:
    result = invoke("run-event", "--home", str(pipeline_home.home), "--policy",
                    "privacy-by-default", "--source", "synth:16", "--duration", "3m",
                    "--now", "2026-06-21T19:51:00Z")
    assert result.exit_code == 0, result.output
    for label in ("frames in", "dropped no_consent", "dropped speech", "sentiment",
                  "decisions", "latency", "requests"):
        assert label in result.stdout
    rt = open_runtime(pipeline_home, NOW)
    try:
        texts = [m.payload["text"] for m in rt.store.iter_metadata(now=NOW, kind="track_request")]
    finally:
        rt.close()
    assert texts and all("06 12 34 56 78" not in t and "Camille" not in t for t in texts)
    assert any("Ciel levant" in t for t in texts)  # the request itself survives redaction


def test_demo_audio_round_trips_through_the_wav_source(
    pipeline_home: Settings, tmp_path: Path
) -> None:
    out = tmp_path / "audio"
    result = invoke("demo-audio", "--out", str(out), "--wristbands", "4", "--duration", "12s")
    assert result.exit_code == 0, result.output
    files = sorted(out.glob("*.wav"))
    assert len(files) == 4 and (out / "manifest.toml").is_file()
    assert inspect_wav(files[0]).frames == 12 * 16000
    again = invoke("demo-audio", "--out", str(out), "--wristbands", "4", "--duration", "12s")
    assert "already holds WAV files" in one_error_line(again)
    run = invoke("run-event", "--home", str(pipeline_home.home), "--policy", "spotify-2026",
                 "--source", f"wav:{out}", "--format", "json")
    assert run.exit_code == 0, run.output
    summary = json.loads(run.stdout)
    assert summary["frames_in"] == 4 * 400
    assert summary["started_at"] == "2026-06-21T19:51:30+00:00"  # from the manifest
    assert summary["raw_segments"] > 0


BAD_WAVS: dict[str, tuple[Callable[[Path], Path], str]] = {
    "garbage": (lambda d: _garbage(d / "WB-1.wav"), "is not a readable PCM WAV file"),
    "truncated": (lambda d: _truncate(write_wav(d / "WB-1.wav"), 5000), "is truncated"),
    "stereo": (lambda d: write_wav(d / "WB-1.wav", channels=2), "has 2 channels"),
    "24-bit": (lambda d: write_wav(d / "WB-1.wav", width=3), "is 24-bit"),
    "44.1 kHz": (lambda d: write_wav(d / "WB-1.wav", rate=44100), "44100 Hz"),
    "empty": (lambda d: write_wav(d / "WB-1.wav", seconds=0), "holds no audio"),
}


def _garbage(path: Path) -> Path:
    path.write_bytes(b"RIFF\x00\x01garbage-not-a-wav")
    return path


def _truncate(path: Path, cut: int) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - cut])
    return path


@pytest.mark.parametrize("case", sorted(BAD_WAVS))
def test_a_bad_wav_is_one_clear_line_and_nothing_is_lost(
    case: str, pipeline_home: Settings, tmp_path: Path
) -> None:
    ok = invoke("run-event", "--home", str(pipeline_home.home), "--policy", "spotify-2026",
                "--source", "synth:4", "--duration", "6s", "--event-id", "earlier")
    assert ok.exit_code == 0, ok.output
    before = counts(pipeline_home)
    folder = tmp_path / "wavs"
    folder.mkdir()
    write_wav(folder / "WB-000001.wav")  # a good file first: it must not be stored either
    make, expected = BAD_WAVS[case]
    bad = make(folder)
    result = invoke("run-event", "--home", str(pipeline_home.home), "--policy", "spotify-2026",
                    "--source", f"wav:{folder}")
    line = one_error_line(result)
    assert expected in line and str(bad) in line
    assert counts(pipeline_home) == before


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--policy", "no-such-policy"], "unknown policy 'no-such-policy'"),
        (["--source", "mic:1"], "use synth, synth:N, wav:DIR or nats:HOST:PORT"),
        (["--source", "synth:abc"], "must be a whole number"),
        (["--speed", "warp"], "use max or realtime"),
        (["--duration", "90"], "has no unit"),
        (["--now", "2026-06-22T12:00:00Z"], "nothing to capture"),
        (["--source", "wav:/no/such/dir"], "is not a directory"),
        (["--source", "nats:127.0.0.1:1"], "NATS at nats://127.0.0.1:1 is unreachable"),
    ],
)
def test_bad_options_are_one_clear_line(
    args: list[str], expected: str, pipeline_home: Settings
) -> None:
    length = [] if "--now" in args else ["--duration", "6s"]  # a late start needs no limit
    result = invoke("run-event", "--home", str(pipeline_home.home), "--source", "synth:2",
                    *length, *args)
    assert expected in one_error_line(result)
    assert counts(pipeline_home)[0] == 0


MALFORMED = {
    "consent": ('[[wristbands.list]]\nserial = "A"\nzone = "front"\nconsent = "maybe"\n',
                "wristbands.list[0].consent = 'maybe' is not valid"),
    "window": ('[[wristbands.list]]\nserial = "A"\nzone = "front"\n',
               "event.ends = "),
    "toml": ("[event\n", "not valid TOML"),
    "unknown key": ('[[wristbands.list]]\nserial = "A"\nzone = "front"\nmood = "happy"\n',
                    "unknown key wristbands.list[0].mood"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_malformed_event_file_names_file_and_key(
    case: str, pipeline_home: Settings, tmp_path: Path
) -> None:
    body, expected = MALFORMED[case]
    head = ('[event]\nid = "x"\nname = "x"\nstarts = 2026-06-21T20:00:00Z\n'
            f'ends = {"2026-06-21T19:00:00Z" if case == "window" else "2026-06-21T21:00:00Z"}\n')
    path = tmp_path / "bad-event.toml"
    path.write_text(body if case == "toml" else head + body, encoding="utf-8")
    result = invoke("run-event", "--home", str(pipeline_home.home), "--event", str(path),
                    "--policy", "tiktok-2026")
    line = one_error_line(result)
    assert f"event file '{path}'" in line and expected in line


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_the_wav_reader_never_crashes_on_arbitrary_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.wav"
    path.write_bytes(b"RIFF" + data if data[:1] == b"\x00" else data)
    try:
        inspect_wav(path)
    except InputError as exc:
        assert str(path) in str(exc)


@pytest.mark.parametrize(
    ("args", "env", "started"),
    [
        (["--now", "2026-06-21T19:55:00Z"], {}, "2026-06-21T19:55:00+00:00"),
        ([], {"FLOWAUDIT_NOW": "2026-06-21T19:56:00+02:00"}, "2026-06-21T17:56:00+00:00"),
        (["--now", "2026-06-21T19:57:00Z"], {"FLOWAUDIT_NOW": "2026-06-21T19:56:00Z"},
         "2026-06-21T19:57:00+00:00"),  # the option wins over the variable
        ([], {"FLOWAUDIT_NOW": ""}, "2026-06-21T19:51:00+00:00"),  # empty: the event decides
    ],
)
def test_run_event_starts_where_the_pinned_now_says(
    args: list[str], env: dict[str, str], started: str, pipeline_home: Settings
) -> None:
    result = CliRunner().invoke(
        app,
        ["run-event", "--home", str(pipeline_home.home), "--policy", "tiktok-2026", "--source",
         "synth:2", "--duration", "6s", "--format", "json", *args],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["started_at"] == started


def test_a_bad_flowaudit_now_is_one_line_naming_the_variable(pipeline_home: Settings) -> None:
    result = CliRunner().invoke(
        app, ["run-event", "--home", str(pipeline_home.home), "--source", "synth:2"],
        env={"FLOWAUDIT_NOW": "tomorrow"},
    )
    assert "FLOWAUDIT_NOW 'tomorrow' is not an ISO 8601 time" in one_error_line(result)
    assert counts(pipeline_home) == (0, 0, 0, 0)


def _wav_dir(tmp_path: Path, manifest: str = "") -> Path:
    directory = tmp_path / "recorded"
    directory.mkdir()
    write_wav(directory / "WB-000001.wav", seconds=3.0)
    if manifest:
        (directory / "manifest.toml").write_text(manifest, encoding="utf-8")
    return directory


@pytest.mark.parametrize(
    ("manifest", "args", "placed_by"),
    [
        ("", [], "the event's capture start"),  # 19:51, in the pre-roll
        ('starts_at = "2026-06-21T19:30:00Z"\n', [], "starts_at in manifest.toml"),
        ("", ["--now", "2026-06-21T21:00:00Z"], "--now"),  # after the set
    ],
)
def test_wav_files_outside_the_event_window_are_named_on_stderr(
    manifest: str, args: list[str], placed_by: str, pipeline_home: Settings, tmp_path: Path
) -> None:
    directory = _wav_dir(tmp_path, manifest)
    result = invoke("run-event", "--home", str(pipeline_home.home), "--policy", "tiktok-2026",
                    "--source", f"wav:{directory}", "--format", "json", *args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["frames_in"] == 100 and summary["dropped"]["outside_window"] == 100
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flowaudit: warning: "), result.stderr
    assert f"'{directory}'" in lines[0] and f"(placed by {placed_by}" in lines[0]
    assert "outside_window" in lines[0] and "--now or starts_at in" in lines[0]


@pytest.mark.parametrize(
    ("manifest", "args", "policy"),
    [
        ('starts_at = "2026-06-21T19:55:00Z"\n', [], "tiktok-2026"),
        ("", ["--now", "2026-06-21T20:01:58Z"], "tiktok-2026"),  # overlaps the set's last 2 s
        ("", [], "spotify-2026"),  # no event-window gate, so nothing is dropped for it
    ],
)
def test_wav_files_inside_the_window_or_ungated_run_without_warning(
    manifest: str, args: list[str], policy: str, pipeline_home: Settings, tmp_path: Path
) -> None:
    directory = _wav_dir(tmp_path, manifest)
    result = invoke("run-event", "--home", str(pipeline_home.home), "--policy", policy,
                    "--source", f"wav:{directory}", "--format", "json", *args)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert json.loads(result.stdout)["dropped"]["outside_window"] < 100
