"""Personal data found in the store's free-text metadata (track requests, notes).

The crowd-sentiment purpose needs no names, phone numbers or bank details, so storing them in
free text breaks data minimisation (GDPR Art 5(1)(c)); when the policy says
``capture.redact_pii = true`` it also shows that the redaction promised before writing did not
happen (Art 25(1), data protection by design). The scan is :func:`audit.pii.store.scan_store`
(presidio, offline, French and English) over the readable records of the free-text kinds.

Severity: **error** when the policy promised redaction, or when a checksum- or
format-validated identifier (email, phone, NIR, IBAN, card, IP) is present; **warning** when
only names were found under a policy that does not redact — NER names have false positives,
so a person should look. Evidence holds counts, field names and record ids, never the text.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from audit.checks._common import iso
from audit.checks._registry import ERROR, WARNING, CheckContext, Finding, get_rule, rule, sample
from audit.pii.scanner import DEFAULT_THRESHOLD, STRUCTURED_ENTITIES
from audit.pii.store import FREE_TEXT_KINDS, scan_store

__all__ = ["pii_in_store"]

RULE_ID = "pii-in-store"


@rule(
    RULE_ID,
    title="Personal data in stored free-text metadata",
    severity=ERROR,
    legal_ref="GDPR Art 5(1)(c), Art 25(1)",
)
def pii_in_store(ctx: CheckContext) -> Iterator[Finding | tuple]:
    with ctx.session() as session:
        events = ctx.events(session)
    for event in events:
        result = scan_store(ctx.runtime.store, now=ctx.now, event_id=event.id)
        if not result.findings:
            continue
        policy = ctx.policy_for(event)
        redact = bool(policy.capture.redact_pii)
        counts = result.counts()
        structured = sorted(set(counts) & set(STRUCTURED_ENTITIES))
        records = result.records_with_findings()
        pseudonyms = {
            result.records_by_id[r]["pseudonym"]
            for r in records
            if result.records_by_id.get(r, {}).get("pseudonym")
        }
        fields = Counter(f.field for f in result.findings)
        what = ", ".join(f"{n} {t}" for t, n in counts.items())
        if redact:
            why = f"policy {policy.name} has capture.redact_pii = true, so it should be redacted"
        else:
            why = f"policy {policy.name} does not redact free text (capture.redact_pii = false)"
        message = (
            f"event {event.id}: {len(records)} of {result.records} free-text record(s) hold "
            f"personal data ({what}); {why}"
        )
        evidence = {
            "event": event.id,
            "policy": policy.name,
            "redact_pii": redact,
            "records_scanned": result.records,
            "texts_scanned": result.texts,
            "records_with_pii": len(records),
            "record_ids": sample(records),
            "wristbands": len(pseudonyms),
            "entities": counts,
            "fields": dict(sorted(fields.items())),
            "kinds": list(FREE_TEXT_KINDS),
            "score_threshold": DEFAULT_THRESHOLD,
            "now": iso(ctx.now),
        }
        if redact or structured:
            yield message, evidence
        else:
            meta = get_rule(RULE_ID)
            yield Finding(
                RULE_ID,
                WARNING,
                meta.title,
                meta.legal_ref,
                message + "; names come from a statistical model: review them",
                evidence,
            )
