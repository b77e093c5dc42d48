"""Every report names the signed Merkle checkpoint it was built on, in Markdown, HTML and JSON."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from audit.log.checkpoints import load_signer, note_verifier_key
from audit.log.notes import open_note, parse_checkpoint, parse_verifier_key
from audit.reports import ReportContext, build_report, render
from retention.models import AuditCheckpoint

from .conftest import Built


@pytest.mark.parametrize("kind", ["gdpr", "dpia", "ai-act", "dsa", "retention"])
def test_reports_carry_the_latest_checkpoint(kind: str, built: Built) -> None:
    ctx = ReportContext.open(built.runtime, now=built.now, event_id=built.event_id)
    report = build_report(kind, ctx)
    with built.runtime.store.session() as session:
        latest = session.scalars(
            select(AuditCheckpoint)
            .where(AuditCheckpoint.root_hash.is_not(None))
            .order_by(AuditCheckpoint.seq.desc(), AuditCheckpoint.id.desc())
        ).first()
    assert latest is not None and latest.root_hash is not None
    meta = json.loads(render(report, "json"))["meta"]["checkpoint"]
    assert meta["tree_size"] == latest.tree_size and meta["root_hash"] == latest.root_hash
    assert meta["key_id"] == latest.key_id and meta["signature_valid"] is True
    signer = load_signer(built.runtime.settings.signing_key_file)
    assert signer is not None
    body = parse_checkpoint(open_note(meta["note"], parse_verifier_key(
        note_verifier_key(signer.public_key))))
    assert body.size == latest.tree_size and body.root.hex() == latest.root_hash
    for fmt in ("md", "html"):
        text = render(report, fmt)
        assert f"Merkle root {latest.root_hash}" in text, fmt
        assert "signature valid" in text
