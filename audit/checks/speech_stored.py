"""Speech stored although the event's policy says ``store_speech = false``.

Recording private words without consent is an offence in France (Code pénal Art 226-1) and
bystanders cannot consent, so the voice-activity gate must keep speech frames out of the raw
store. Proof comes from two places: raw segments still in the store with ``speech_frames > 0``,
and ``raw.put`` audit entries that recorded speech frames — the log outlives purged audio.
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select

from audit.checks._common import audit_details, iso, summarise
from audit.checks._registry import ERROR, CheckContext, rule
from retention.ground.actions import Action
from retention.models import RawSegment

__all__ = ["speech_stored"]


@rule(
    "speech-stored",
    title="Speech stored while store_speech = false",
    severity=ERROR,
    legal_ref="GDPR Art 5(1)(c), Art 25(2); Code pénal Art 226-1",
)
def speech_stored(ctx: CheckContext) -> Iterator[tuple]:
    with ctx.session() as session:
        events = {
            e.id: e for e in ctx.events(session) if not ctx.policy_for(e).capture.store_speech
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
            frames = sum(r.speech_frames for r in rows)
            yield (
                f"event {event_id}: policy {policy.name} forbids storing speech, yet "
                f"{len(rows)} stored raw segment(s) hold {frames} speech frame(s) and the audit "
                f"log records {len(from_log)} write(s) with speech",
                {
                    "event": event_id,
                    "policy": policy.name,
                    **summarise(rows),
                    "speech_frames": frames,
                    "logged_writes_with_speech": len(from_log),
                    "audit_seqs": from_log[:20],
                    "logged_wristbands": len(wristbands.get(event_id, ())),
                    "now": iso(ctx.now),
                },
            )
