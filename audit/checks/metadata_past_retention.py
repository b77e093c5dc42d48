"""Metadata still decryptable after its retention ended (GDPR Art 5(1)(e) storage limitation)."""

from __future__ import annotations

from collections.abc import Iterator

from audit.checks._common import readable_past_retention
from audit.checks._registry import ERROR, CheckContext, rule

__all__ = ["metadata_past_retention"]


@rule(
    "metadata-past-retention",
    title="Metadata still readable past its retention",
    severity=ERROR,
    legal_ref="GDPR Art 5(1)(e)",
)
def metadata_past_retention(ctx: CheckContext) -> Iterator[tuple[str, dict]]:
    yield from readable_past_retention(ctx, "metadata")
