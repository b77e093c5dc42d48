"""Retention rules: readable past retention, missing purge receipts, indefinite metadata."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from flowaudit.runtime import Runtime
from retention.policy import load_policy

from .scene import ENDS, STARTS, Scene, by_rule, clean_scene

RAW = "raw-audio-past-retention"
META = "metadata-past-retention"
RECEIPT = "expired-bucket-without-purge-receipt"
INDEFINITE = "indefinite-linkable-metadata"
LATER = ENDS + timedelta(days=3)  # apple-music-2025 keeps raw audio 24 h


def test_clean_event_under_privacy_by_default_has_no_findings(runtime: Runtime) -> None:
    scene = clean_scene(runtime)
    scene.seal(ENDS)
    assert scene.findings(ENDS + timedelta(hours=2)) == []


def test_raw_audio_readable_past_retention_fires(runtime: Runtime) -> None:
    scene = clean_scene(runtime, "apple-music-2025")
    pseudonym = scene.wristband()
    rid = scene.raw(pseudonym, STARTS + timedelta(minutes=30))
    findings = by_rule(scene.findings(LATER), RAW)
    assert len(findings) == 1
    evidence = findings[0].evidence
    assert evidence["buckets"] == 1 and evidence["records_remaining"] == 1
    assert evidence["bucket_ids"] == [f"{scene.event_id}:raw_audio:20260621T18"]
    assert evidence["oldest_expired_at"] == "2026-06-22T19:00:00+00:00"
    assert findings[0].legal_ref == "GDPR Art 5(1)(e)"
    assert rid  # the record is still in the store
    assert scene.errors(LATER) == {RAW, RECEIPT}


def test_raw_audio_purged_with_receipt_is_clean(runtime: Runtime) -> None:
    scene = clean_scene(runtime, "apple-music-2025")
    scene.raw(scene.wristband(), STARTS + timedelta(minutes=30))
    scene.purge(LATER)
    assert scene.errors(LATER) == set()


def test_raw_audio_not_yet_expired_or_within_grace_is_clean(runtime: Runtime) -> None:
    scene = clean_scene(runtime, "apple-music-2025")
    scene.raw(scene.wristband(), STARTS + timedelta(minutes=30))
    expiry = STARTS + timedelta(hours=1, days=1)
    assert scene.errors(expiry - timedelta(minutes=1)) == set()
    assert scene.errors(expiry + timedelta(minutes=30)) == set()  # purge job has an hour
    assert scene.errors(expiry + timedelta(hours=2)) == {RAW, RECEIPT}


def test_shredded_without_receipt_still_needs_a_receipt(runtime: Runtime) -> None:
    scene = clean_scene(runtime, "apple-music-2025")
    scene.raw(scene.wristband(), STARTS + timedelta(minutes=30))
    bucket = f"{scene.event_id}:raw_audio:20260621T18"
    scene.store.shred_buckets([bucket], now=LATER)
    findings = scene.findings(LATER)
    assert by_rule(findings, RAW) == []
    (receipt,) = by_rule(findings, RECEIPT)
    assert receipt.evidence["bucket_ids"] == [bucket]
    assert receipt.evidence["by_state"] == {"SHREDDED": 1}


def test_a_dry_run_receipt_does_not_count(runtime: Runtime) -> None:
    scene = clean_scene(runtime, "apple-music-2025")
    scene.raw(scene.wristband(), STARTS + timedelta(minutes=30))
    scene.purge(LATER, dry_run=True)
    assert scene.errors(LATER) == {RAW, RECEIPT}


def test_metadata_readable_past_retention_fires_then_purge_clears_it(runtime: Runtime) -> None:
    scene = clean_scene(runtime, "tiktok-2026")  # metadata 7 d
    after = ENDS + timedelta(days=9)
    (finding,) = by_rule(scene.findings(after), META)
    assert finding.evidence["category"] == "metadata"
    assert finding.evidence["records_remaining"] == 10  # 3 wristbands x 3 + 1 crowd score
    assert scene.errors(after) == {META, RECEIPT}
    scene.purge(after, delete_rows=False)
    assert scene.errors(after) == set()


def test_indefinite_linkable_metadata_fires_under_spotify(runtime: Runtime) -> None:
    scene = clean_scene(runtime, "spotify-2026")
    (finding,) = by_rule(scene.findings(ENDS), INDEFINITE)
    assert finding.severity == "error"
    assert finding.evidence["records"] == 9  # the crowd score has no pseudonym
    assert finding.evidence["wristbands"] == 3
    assert finding.evidence["policy"] == "spotify-2026"
    assert scene.errors(ENDS) == {INDEFINITE}


def test_indefinite_but_anonymised_metadata_is_only_a_policy_warning(runtime: Runtime) -> None:
    scene = Scene(runtime, "spotify-2026")
    scene.wristband()
    scene.score(None, STARTS + timedelta(minutes=5), kind="crowd_score", anonymised=True)
    (finding,) = by_rule(scene.findings(ENDS), INDEFINITE)
    assert finding.severity == "warning" and finding.evidence["records"] == 0


def test_finite_metadata_is_not_indefinite(runtime: Runtime) -> None:
    scene = clean_scene(runtime)
    assert by_rule(scene.findings(ENDS), INDEFINITE) == []


def test_indefinite_metadata_is_due_only_after_anonymise_after(
    runtime: Runtime, tmp_path: Path
) -> None:
    text = (Path(load_policy("spotify-2026").source)).read_text(encoding="utf-8")
    text = text.replace('name = "spotify-2026"', 'name = "custom-indefinite"').replace(
        'anonymise_metadata_after = "indefinite"', 'anonymise_metadata_after = "72h"'
    )
    path = tmp_path / "custom.toml"
    path.write_text(text, encoding="utf-8")
    custom = load_policy(path)
    scene = clean_scene(runtime, "spotify-2026")
    before = scene.findings(ENDS + timedelta(hours=60), only=[INDEFINITE], policy=custom)
    after = scene.findings(ENDS + timedelta(hours=80), only=[INDEFINITE], policy=custom)
    assert before == []
    assert len(after) == 1 and after[0].evidence["anonymise_metadata_after"] == "72h"
