"""What flowaudit keeps about a wristband that could single a person out.

These are the default quasi-identifiers of a policy's ``[reid]`` section and the columns the
store's subject table holds for them; the anonymiser, the risk measurement and the exports
all read them from here so a new one is added in one place.
"""

from __future__ import annotations

__all__ = ["QUASI_IDENTIFIERS", "SENSITIVE_ATTRIBUTES", "TIME_QUASI_IDENTIFIERS"]

#: the policy default, and the order columns appear in tables and reports
QUASI_IDENTIFIERS: tuple[str, ...] = (
    "zone",
    "arrival_bucket",
    "age_band",
    "ticket_type",
    "device_model",
)

#: attributes an attacker would learn (l-diversity, t-closeness), never grouping keys
SENSITIVE_ATTRIBUTES: tuple[str, ...] = ("mean_sentiment_band",)

#: quasi-identifiers holding a time, generalised by flooring rather than by a value map
TIME_QUASI_IDENTIFIERS: tuple[str, ...] = ("arrival_bucket", "arrival_at")
