"""kill -9 the real ``flowaudit purge`` at random moments, rerun it: it ends as if never killed.

A handful of trials per backend (``make crash`` runs 28). Each compares buckets and their
states, rows, live keys and readable data, the receipts' buckets and counts, the purge runs'
states and the audit log verifying (see :func:`tests.crash.scenarios.purge_state`).
"""

from __future__ import annotations

from pathlib import Path

from .harness import Launcher, run_scenario
from .scenarios import PURGE

TRIALS = 3


def test_purge_killed_at_random_moments_then_rerun_ends_like_an_uninterrupted_purge(
    launcher: Launcher, crash_backend: str, tmp_path: Path
) -> None:
    summary = run_scenario(
        launcher, PURGE, crash_backend, trials=TRIALS, seed=20260621, workdir=tmp_path
    )
    assert summary.identical == TRIALS, summary.report()
    assert summary.killed >= 1, summary.report()  # the kills really landed mid-run
