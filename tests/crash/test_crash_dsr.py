"""kill -9 the real ``flowaudit dsr erase`` at random moments, rerun it: one erasure, one answer.

The rerun prints the same receipt as an uninterrupted erasure, whether the kill landed before,
during or after the erasure committed (see :func:`tests.crash.scenarios.dsr_state`); and the
window that used to fail — committed, then killed before the answer — is also hit on purpose.
"""

from __future__ import annotations

import json
from pathlib import Path

from retention.subject_requests import erase_subject

from .harness import Launcher, copy_home, drop_home, run_scenario
from .scenarios import DSR_AT, DSR_ERASE, VICTIM, dsr_state, prepare_dsr

TRIALS = 3


def test_dsr_erase_killed_at_random_moments_then_rerun_ends_like_one_erasure(
    launcher: Launcher, crash_backend: str, tmp_path: Path
) -> None:
    summary = run_scenario(
        launcher, DSR_ERASE, crash_backend, trials=TRIALS, seed=17, workdir=tmp_path
    )
    assert summary.identical == TRIALS, summary.report()
    assert summary.killed >= 1, summary.report()


def test_a_retry_after_the_erasure_committed_confirms_it(
    launcher: Launcher, crash_backend: str, tmp_path: Path
) -> None:
    """Killed after the commit, before signing or printing: the retry answers, exit 0."""
    template = prepare_dsr(tmp_path / "template", crash_backend)
    argv = [a.replace("{home}", str(template.path)) for a in DSR_ERASE.argv]
    reference = copy_home(template, tmp_path / "reference")
    try:
        first = launcher.run(
            [a.replace(str(template.path), str(reference.path)) for a in argv],
            tmp_path / "first",
        )
        assert first.returncode == 0, first.stderr
        expected = dsr_state(reference, first)
        runtime = template.open(DSR_AT)  # the erasure's work, committed; nothing signed after
        try:
            erase_subject(runtime.store, VICTIM, now=DSR_AT, batch=2)
        finally:
            runtime.close()
        retry = launcher.run(argv, tmp_path / "retry")
        assert retry.returncode == 0, retry.stderr
        assert json.loads(retry.stdout) == json.loads(first.stdout)
        assert dsr_state(template, retry) == expected  # the audit log verifies: the retry signed
    finally:
        drop_home(reference)
        drop_home(template)
