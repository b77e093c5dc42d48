"""The `pii-in-store` compliance check, on real stores (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import timedelta

from flowaudit.runtime import Runtime
from tests.audit_checks.scene import STARTS, Scene, by_rule, clean_scene

NOW = STARTS + timedelta(hours=3)
RULE = "pii-in-store"


def _request(scene: Scene, text: str, minute: int = 20, pseudonym: str | None = None) -> str:
    return scene.score(
        pseudonym, STARTS + timedelta(minutes=minute), kind="track_request", payload={"text": text}
    )


def test_personal_data_in_a_track_request_is_an_error(runtime: Runtime) -> None:
    scene = clean_scene(runtime)
    who = scene.wristband()
    bad = _request(scene, "Joue Daft Punk pour Marie Dupont, rappelle-moi au 06 12 34 56 78", 20, who)
    _request(scene, "Encore Get Lucky !!!", 25)
    [finding] = by_rule(scene.findings(NOW, only=[RULE]), RULE)
    assert finding.severity == "error"
    assert finding.legal_ref.startswith("GDPR Art 5(1)(c)")
    evidence = finding.evidence
    assert evidence["records_scanned"] == 2
    assert evidence["records_with_pii"] == 1
    assert evidence["record_ids"] == [bad]
    assert evidence["entities"] == {"PERSON": 1, "PHONE_NUMBER": 1}
    assert evidence["fields"] == {"track_request.text": 2}
    assert evidence["wristbands"] == 1
    assert evidence["redact_pii"] is True
    dumped = json.dumps(finding.as_dict(), ensure_ascii=False)
    for secret in ("Marie", "Dupont", "06 12 34 56 78"):
        assert secret not in dumped


def test_vocabulary_only_requests_are_clean(runtime: Runtime) -> None:
    scene = clean_scene(runtime)
    _request(scene, "Joue Daft Punk svp")
    _request(scene, "Play Around the World in Zone B", 30)
    assert by_rule(scene.findings(NOW, only=[RULE]), RULE) == []


def test_a_store_without_free_text_is_clean(sqlite_runtime: Runtime) -> None:
    scene = clean_scene(sqlite_runtime)
    assert by_rule(scene.findings(NOW, only=[RULE]), RULE) == []


def test_names_only_under_a_policy_without_redaction_is_a_warning(sqlite_runtime: Runtime) -> None:
    scene = clean_scene(sqlite_runtime, policy="spotify-2026")
    _request(scene, "Dédicace à Chloé Bernard de la part de Thomas Laurent !")
    [finding] = by_rule(scene.findings(NOW, only=[RULE]), RULE)
    assert finding.severity == "warning"
    assert finding.evidence["redact_pii"] is False
    assert "review them" in finding.message


def test_a_validated_identifier_is_an_error_even_without_redaction(
    sqlite_runtime: Runtime,
) -> None:
    scene = clean_scene(sqlite_runtime, policy="spotify-2026")
    _request(scene, "Remboursement sur FR76 3000 6000 0112 3456 7890 189 svp")
    [finding] = by_rule(scene.findings(NOW, only=[RULE]), RULE)
    assert finding.severity == "error"
    assert finding.evidence["entities"] == {"IBAN_CODE": 1}


def test_expired_requests_are_not_read(sqlite_runtime: Runtime) -> None:
    scene = clean_scene(sqlite_runtime)
    scene.score(
        None,
        STARTS + timedelta(minutes=5),
        kind="track_request",
        payload={"text": "mail: marie.dupont@orange.fr"},
        retention=timedelta(hours=1),
    )
    assert by_rule(scene.findings(STARTS + timedelta(minutes=30), only=[RULE]), RULE)
    assert by_rule(scene.findings(STARTS + timedelta(hours=4), only=[RULE]), RULE) == []
