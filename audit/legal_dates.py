"""Every date and time limit of law that a check or a report applies, each named once.

Checks decide with these constants and reports print them, so a rule and the report that
presents it can never disagree about when an obligation starts. Each constant names its
source. The GDPR Art 12(3) answer period is a rule on requests, so it lives with them in
:mod:`retention.subject_requests` (``retention`` imports nothing of ``audit``); it is
re-exported here so this module lists every time limit in one place.
"""

from __future__ import annotations

from datetime import date, timedelta

from retention.subject_requests import ART12_MAX_MONTHS, ART12_MONTHS, deadline_of

__all__ = [
    "AI_ACT_ENTRY_INTO_FORCE",
    "AI_ACT_PROHIBITIONS",
    "AI_ACT_PENALTIES",
    "AI_ACT_TRANSPARENCY",
    "AI_ACT_ANNEX_III_ORIGINAL",
    "AI_ACT_ANNEX_III",
    "DIGITAL_OMNIBUS_AGREEMENT",
    "AI_ACT_LOG_RETENTION",
    "ART12_MONTHS",
    "ART12_MAX_MONTHS",
    "deadline_of",
    "in_force",
]

# -- AI Act, Regulation (EU) 2024/1689 ------------------------------------------------------------
#: Art 113 first paragraph: in force on the twentieth day after publication (OJ 12 July 2024).
AI_ACT_ENTRY_INTO_FORCE = date(2024, 8, 1)
#: Art 113(a): Chapters I and II apply — Art 4 AI literacy, Art 5 prohibited practices
#: (Art 5(1)(f): emotion recognition at the workplace).
AI_ACT_PROHIBITIONS = date(2025, 2, 2)
#: Art 113(b): Chapter V (general-purpose AI) and Chapter XII (penalties, Art 99) apply.
AI_ACT_PENALTIES = date(2025, 8, 2)
#: Art 113 second paragraph: general application, including Art 50 transparency (50(3) notice).
AI_ACT_TRANSPARENCY = date(2026, 8, 2)
#: Art 113 second paragraph: the date Annex III high-risk obligations (Art 6(2), Art 26)
#: originally applied from.
AI_ACT_ANNEX_III_ORIGINAL = date(2026, 8, 2)
#: Annex III high-risk obligations (Arts 9–17, 26, 43, 49) as deferred by the Digital Omnibus
#: provisional agreement; verify against the Official Journal before relying on it.
AI_ACT_ANNEX_III = date(2027, 12, 2)
#: The Digital Omnibus provisional agreement that defers the Annex III date (not yet in the OJ).
DIGITAL_OMNIBUS_AGREEMENT = date(2026, 5, 7)
#: Art 26(6): deployers keep the automatically generated logs for at least six months
#: (183 days: the longest six calendar months).
AI_ACT_LOG_RETENTION = timedelta(days=183)


def in_force(applies_from: date, as_of: date) -> bool:
    """Whether an obligation applying from ``applies_from`` binds at the evaluation date."""
    return as_of >= applies_from
