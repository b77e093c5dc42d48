"""Raw audio still decryptable after its retention ended (GDPR Art 5(1)(e) storage limitation).

Proof comes from the key store, not the policy: an expired raw-audio bucket whose bucket key has
not been destroyed can still be decrypted — from the database, a replica or a backup.
"""

from __future__ import annotations

from collections.abc import Iterator

from audit.checks._common import readable_past_retention
from audit.checks._registry import ERROR, CheckContext, rule

__all__ = ["raw_audio_past_retention"]


@rule(
    "raw-audio-past-retention",
    title="Raw audio still readable past its retention",
    severity=ERROR,
    legal_ref="GDPR Art 5(1)(e)",
)
def raw_audio_past_retention(ctx: CheckContext) -> Iterator[tuple[str, dict]]:
    yield from readable_past_retention(ctx, "raw_audio")
