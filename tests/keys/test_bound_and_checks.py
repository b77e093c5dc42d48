"""The GDPR report states the bound after which a shred is irreversible, from the log and the
configured interval; the key-lifecycle rules fire on a resurrected key and an overdue rotation."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta
from pathlib import Path

from jsonschema import Draft202012Validator

from audit.checks import CheckContext, run_checks
from audit.reports import ReportContext, build_report, render, schema_for
from audit.scope import AuditScope
from flowaudit.config import Settings, resolve_settings
from flowaudit.runtime import Runtime, open_runtime
from retention.policy import load_policy
from retention.purge import purge
from tests.retention_ops._data import seed_crowd

from ._helpers import cli

RULES = ("key-store-holds-destroyed-keys", "key-rotation-overdue")


def _gdpr(rt: Runtime, at: datetime) -> dict:  # type: ignore[type-arg]
    ctx = ReportContext.open(rt, now=at, event_id="fete")
    document = json.loads(render(build_report("gdpr", ctx), "json"))
    Draft202012Validator(schema_for("gdpr")).validate(document)
    bound = document["data"]["retention"]["shred_bound"]
    markdown = render(build_report("gdpr", ReportContext.open(rt, now=at, event_id="fete")), "md")
    assert bound["statement"] in markdown  # the same sentence, printed in the report
    return bound  # type: ignore[no-any-return]


def _with_interval(settings: Settings, interval: str) -> Settings:
    with settings.config_file.open("a", encoding="utf-8") as handle:
        handle.write(f'key_rotation_interval = "{interval}"\n')
    return resolve_settings(settings.home)


def _seed(settings: Settings, now: datetime) -> None:
    rt = open_runtime(settings, now)
    seed_crowd(rt.store, now, event_id="fete", subjects=2, hours=2,
               raw_retention=timedelta(hours=1), meta_retention=None, seed=12)
    rt.close()


def test_no_interval_means_no_bound(sqlite_home: Settings, now: datetime) -> None:
    _seed(sqlite_home, now)
    rt = open_runtime(sqlite_home, now + timedelta(hours=5))
    try:
        purge(rt.store, now=rt.now)
        bound = _gdpr(rt, rt.now)
    finally:
        rt.close()
    assert bound["rotation_interval"] is None and bound["next_rotation_due"] is None
    assert bound["statement"].startswith("no bound") and "key_rotation_interval" in bound["statement"]
    assert bound["shreds_under_current_key"] >= 1 and bound["retirements"] == 0


def test_the_bound_follows_the_interval_and_the_last_rotation(
    sqlite_home: Settings, now: datetime
) -> None:
    settings = _with_interval(sqlite_home, "30d")
    _seed(settings, now)
    rotated_at = now + timedelta(hours=1)
    assert cli("keys", "rotate", "--home", str(settings.home),
               "--now", rotated_at.isoformat()).exit_code == 0
    later = now + timedelta(hours=5)
    rt = open_runtime(settings, later)
    try:
        shredded = purge(rt.store, now=later).buckets_shredded
        assert cli("keys", "backup", "--out", str(settings.home.parent / "b"), "--home",
                   str(settings.home), "--now", later.isoformat()).exit_code == 0
        bound = _gdpr(rt, later)
        assert bound["rotation_interval"] == "30d" and bound["retirements"] == 1
        assert bound["last_retirement"] == rotated_at.isoformat()
        assert bound["next_rotation_due"] == (rotated_at + timedelta(days=30)).isoformat()
        assert bound["shreds_under_current_key"] >= 1 and shredded
        assert bound["backups_under_current_key"] == 1
        assert "at most 30d after it happened" in bound["statement"]
        assert not bound["overdue"]
        overdue = _gdpr(rt, rotated_at + timedelta(days=31))
        assert overdue["overdue"] and "OVERDUE" in overdue["statement"]
    finally:
        rt.close()


def _findings(rt: Runtime, at: datetime) -> dict[str, list[str]]:
    scope = AuditScope(load_policy("spotify-2026"), at, at.date(), None, True)
    out: dict[str, list[str]] = {r: [] for r in RULES}
    for finding in run_checks(CheckContext.from_scope(rt, scope), RULES):
        out[finding.rule_id].append(finding.message)
    return out


def test_rules_fire_on_a_resurrected_key_and_an_overdue_rotation(
    sqlite_home: Settings, now: datetime, tmp_path: Path
) -> None:
    settings = _with_interval(sqlite_home, "1d")
    _seed(settings, now)
    copy = tmp_path / "keystore.bin"
    shutil.copy2(settings.keystore_file, copy)
    later = now + timedelta(hours=5)
    rt = open_runtime(settings, later)
    try:
        purge(rt.store, now=later)
        clean = _findings(rt, later)
        assert clean == {r: [] for r in RULES}  # without violations: silent
    finally:
        rt.close()

    shutil.copy2(copy, settings.keystore_file)  # restored by hand, ledger not replayed
    rt = open_runtime(settings, later + timedelta(days=2))
    try:
        found = _findings(rt, rt.now)
        (resurrected,) = found["key-store-holds-destroyed-keys"]
        assert "back in the key store" in resurrected and "keys replay" in resurrected
        (overdue,) = found["key-rotation-overdue"]
        assert "flowaudit keys rotate" in overdue
    finally:
        rt.close()
    args = ["--home", str(settings.home), "--now", (later + timedelta(days=2)).isoformat()]
    assert cli("keys", "replay", *args).exit_code == 0
    assert cli("keys", "rotate", *args).exit_code == 0
    rt = open_runtime(settings, later + timedelta(days=2))
    try:
        assert _findings(rt, rt.now) == {r: [] for r in RULES}
    finally:
        rt.close()
