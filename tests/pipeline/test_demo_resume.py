"""`flowaudit demo` goes on after a demo run that stopped part-way, instead of refusing."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipeline_helpers import CtrlC

from flowaudit.demo import run_policy
from flowaudit.runtime import initialise_home, open_runtime, pii_text_filter, signing
from pipeline import load_event, run_event, synthetic_for
from pipeline.event import default_event_file
from retention.policy import load_policy
from retention.store import RUN_FINISHED, RUN_INTERRUPTED

WRISTBANDS = 3
POLICY = "privacy-by-default"


def test_a_stopped_demo_run_is_resumed_and_ends_as_an_uninterrupted_one(tmp_path: Path) -> None:
    event = load_event(default_event_file())
    event_id = f"{event.id}-{POLICY}"
    policy = load_policy(POLICY)
    settings = initialise_home(tmp_path / "stopped")
    runtime = open_runtime(settings, event.capture_ends)
    try:
        with pytest.raises(KeyboardInterrupt), signing(runtime):
            run_event(
                runtime.store, event, policy, CtrlC(synthetic_for(event, WRISTBANDS), 7),
                text_filter=pii_text_filter(policy), event_id=event_id,
                source_label=f"synth:{WRISTBANDS}",
            )
        assert [r.status for r in runtime.store.runs(event_id)] == [RUN_INTERRUPTED]
    finally:
        runtime.close()

    said: list[str] = []
    resumed = run_policy(settings, event, POLICY, WRISTBANDS, said.append)
    whole = run_policy(initialise_home(tmp_path / "whole"), event, POLICY, WRISTBANDS,
                       lambda _line: None)

    assert any("resuming" in line for line in said)
    assert resumed.replayed_windows == 7
    fields = ("windows", "frames_in", "dropped", "frames_stored", "raw_segments",
              "window_scores", "decisions", "adaptive_flow", "sentiment")
    assert {f: getattr(resumed, f) for f in fields} == {f: getattr(whole, f) for f in fields}
    runtime = open_runtime(settings, event.capture_ends)
    try:
        assert [r.status for r in runtime.store.runs(event_id)] == [RUN_FINISHED]
    finally:
        runtime.close()
