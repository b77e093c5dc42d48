"""Speech in the raw store: forbidden by ``store_speech = false``, needless where allowed.

Recording private words without consent is an offence in France (Code pénal Art 226-1) and
bystanders cannot consent, so the voice-activity gate must keep speech frames out of the raw
store. Proof comes from two places: raw segments still in the store with ``speech_frames > 0``,
and ``raw.put`` audit entries that recorded speech frames — the log outlives purged audio.

Two rules: ``speech-stored`` (an error) for events whose policy forbids storing speech;
``speech-stored-by-policy`` (a warning) for events whose policy allows it and that did store
speech — no purpose of the processing needs speech (Art 5(1)(c)).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import select

from audit.checks._common import audit_details, iso, summarise
from audit.checks._registry import ERROR, WARNING, CheckContext, rule
from retention.ground.actions import Action
from retention.models import Event, RawSegment

__all__ = ["speech_stored", "speech_stored_by_policy"]


def _speech(ctx: CheckContext, allowed: bool) -> Iterator[tuple[Event, str, dict[str, Any]]]:
    """``(event, policy name, evidence)`` per event with stored speech whose policy's
    ``store_speech`` equals ``allowed``."""
    with ctx.session() as session:
        events = {
            e.id: e
            for e in ctx.events(session)
            if bool(ctx.policy_for(e).capture.store_speech) is allowed
        }
        if not events:
            return
        logged: dict[str, list[int]] = {}  # event -> seqs of raw.put entries with speech
        wristbands: dict[str, set[str]] = {}
        for seq, _, details in audit_details(session, Action.RAW_PUT):
            event_id = details.get("event")
            frames = details.get("speech_frames") or 0
            if event_id in events and isinstance(frames, int) and frames > 0:
                logged.setdefault(str(event_id), []).append(seq)
                wristbands.setdefault(str(event_id), set()).add(str(details.get("subject")))
        for event_id, event in events.items():
            rows = list(
                session.scalars(
                    select(RawSegment).where(
                        RawSegment.event_id == event_id, RawSegment.speech_frames > 0
                    )
                )
            )
            from_log = logged.get(event_id, [])
            if not rows and not from_log:
                continue
            policy = ctx.policy_for(event)
            yield (
                event,
                policy.name,
                {
                    "event": event_id,
                    "policy": policy.name,
                    **summarise(rows),
                    "speech_frames": sum(r.speech_frames for r in rows),
                    "logged_writes_with_speech": len(from_log),
                    "audit_seqs": from_log[:20],
                    "logged_wristbands": len(wristbands.get(event_id, ())),
                    "now": iso(ctx.now),
                },
            )


def _what(evidence: dict[str, Any]) -> str:
    return (
        f"{evidence['records']} stored raw segment(s) hold {evidence['speech_frames']} speech "
        f"frame(s) and the audit log records {evidence['logged_writes_with_speech']} write(s) "
        "with speech"
    )


@rule(
    "speech-stored",
    title="Speech stored while store_speech = false",
    severity=ERROR,
    legal_ref="GDPR Art 5(1)(c), Art 25(2); Code pénal Art 226-1",
)
def speech_stored(ctx: CheckContext) -> Iterator[tuple]:
    for event, policy, evidence in _speech(ctx, allowed=False):
        yield (
            f"event {event.id}: policy {policy} forbids storing speech, yet {_what(evidence)}",
            evidence,
        )


@rule(
    "speech-stored-by-policy",
    title="Speech stored because the policy allows it (store_speech = true)",
    severity=WARNING,
    legal_ref="GDPR Art 5(1)(c); Code pénal Art 226-1",
)
def speech_stored_by_policy(ctx: CheckContext) -> Iterator[tuple]:
    for event, policy, evidence in _speech(ctx, allowed=True):
        yield (
            f"event {event.id}: policy {policy} allows storing speech and {_what(evidence)}; "
            "no purpose needs speech and bystanders cannot consent: set capture.store_speech "
            "= false",
            evidence,
        )
