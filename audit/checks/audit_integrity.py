"""The audit log itself must verify: chain, signed checkpoints and, if given, the anchor.

Every other finding rests on the log; a log that fails verification is an error (GDPR Art 5(2)
accountability; AI Act Art 12 and Art 26(6) automatic logs). Entries after the last signed
checkpoint are an error too: nothing proves who wrote them, a forged append looks the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from audit.checks._registry import ERROR, WARNING, CheckContext, rule
from audit.log.checkpoints import load_signer
from audit.log.verify import verify_log

__all__ = ["audit_log_verifies"]


@rule(
    "audit-log-verification",
    title="Audit log fails verification",
    severity=ERROR,
    legal_ref="GDPR Art 5(2); AI Act Art 12, Art 26(6)",
)
def audit_log_verifies(ctx: CheckContext) -> Iterator[tuple]:
    signer = load_signer(Path(ctx.runtime.settings.signing_key_file))
    public_key = signer.public_key if signer is not None else None
    if public_key is None and ctx.anchor is not None:
        public_key = ctx.anchor.public_key
    report = verify_log(ctx.runtime.engine, public_key, ctx.anchor)
    evidence = {
        "entries": report.entries,
        "head_seq": report.head_seq,
        "checkpoints": report.checkpoints,
        "checkpoints_verified": report.checkpoints_verified,
        "signatures_checked": report.signatures_checked,
        "anchor_seq": report.anchor_seq,
        "unsigned_tail": report.unsigned_tail,
    }
    if not report.ok:
        first = report.first_problem or report.problems[0]
        yield (
            f"the audit log fails verification at seq {report.first_bad_seq}: {first.message} "
            f"({report.problems_total} problem(s)); run `flowaudit audit verify`",
            {
                **evidence,
                "first_bad_seq": report.first_bad_seq,
                "problems": report.problems_total,
                "first_problems": [
                    {"seq": p.seq, "kind": p.kind}
                    for p in sorted(report.problems, key=lambda p: p.seq)[:10]
                ],
            },
        )
    elif public_key is None:
        yield (
            "the audit chain verifies but its checkpoints could not be authenticated: no "
            "signing key in the home and no anchor given",
            evidence,
            WARNING,
        )
