"""The DJ console's controls of one event (DSA Art 27(3) "options to modify"): what the policy's
``selection.artist_control`` lets through, who may use them, their limits, and what was used.

The rule is :mod:`retention.ground.console_rules`, the one the console enforces and the live
crowd step applies; this module adds what each control does in words. What was used is read
from the store: keys from ``console_keys``, stored controls from ``console_controls``, and
controls refused before they were stored (unknown track or artist) from the audit log's
``console.control`` entries. No key, key digest or label is returned.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from retention.ground.actions import Action
from retention.ground.console_rules import (
    CONTROL_KINDS,
    CONTROL_ROLES,
    DEFAULT_BURST,
    DEFAULT_RATE,
    KEY_ROLES,
    READ_ROLES,
    refusal_for,
)
from retention.models import AuditEntry, ConsoleControl, ConsoleKey

__all__ = ["CONTROLS", "COMMON_LIMITS", "console_options"]

#: per kind: the endpoint, what it does, and its limits (beyond the key, role and rate limit)
CONTROLS: dict[str, dict[str, str]] = {
    "override": {
        "endpoint": "POST /v1/events/{id}/controls/override",
        "effect": "Plays the named track at the next decision instead of the selector's pick; "
        "the decision is recorded as an artist override, with the control's number and key "
        "label.",
        "limits": "A catalogue track only; one override per decision, taken in the order they "
        "were stored; it also replaces a mood-recovery pick (Adaptive Flow). A stored override "
        "cannot be withdrawn.",
    },
    "veto": {
        "endpoint": "POST /v1/events/{id}/controls/veto",
        "effect": "Removes a track, or every track of an artist, from what the selector may "
        "pick, for the rest of the event.",
        "limits": "A catalogue track or artist only; a veto that would leave no track to play "
        "is refused (409 veto_leaves_no_track), stored and audited; a veto cannot be lifted "
        "from the console; an override (full only) still plays the track it names.",
    },
    "pin": {
        "endpoint": "POST /v1/events/{id}/controls/pin",
        "effect": "Adds a track to the pinned pool: while the pool has an unplayed, allowed "
        "track, the selector picks from the pool.",
        "limits": "A catalogue track only; once every pinned track is played the selector "
        "picks from all allowed tracks again; below the Adaptive Flow threshold it still "
        "prefers mood-recovery tracks.",
    },
}

COMMON_LIMITS = (
    "Only a key of role artist, issued for this event, may post a control; artist and viewer "
    "keys read them (GET /v1/events/{id}/controls); a scorer key does neither.",
    "Each key has its own rate limit (token bucket; refused with 429 and Retry-After when "
    "empty).",
    "Controls apply to a live event only: a console replaying a stored event refuses them "
    "(409 replay_read_only).",
    "A control naming a track or artist the catalogue does not have is refused (404 "
    "unknown_track / unknown_artist), audited and not stored; every other control is "
    "stored and audited, accepted or refused, with the key's id, label and role.",
)


def _keys(session: Session, event_id: str) -> dict[str, Any]:
    rows = list(session.scalars(select(ConsoleKey).where(ConsoleKey.event_id == event_id)))
    by_role = Counter(r.role for r in rows)
    rates = sorted({(float(r.rate_per_second), int(r.burst)) for r in rows})
    return {
        "issued": len(rows),
        "revoked": sum(1 for r in rows if r.revoked_at is not None),
        "by_role": {role: by_role.get(role, 0) for role in KEY_ROLES},
        "rate_limits": [{"rate_per_second": r, "burst": b} for r, b in rates],
    }


def _counts(session: Session, event_id: str) -> tuple[dict[str, dict[str, int]], Counter[str]]:
    counts = {k: {"accepted": 0, "applied": 0, "refused": 0} for k in CONTROL_KINDS}
    reasons: Counter[str] = Counter()
    for row in session.scalars(
        select(ConsoleControl).where(ConsoleControl.event_id == event_id)
    ):
        if row.kind not in counts:
            continue
        counts[row.kind]["refused" if row.status == "refused" else "accepted"] += 1
        if row.status != "refused" and row.applied_at is not None:
            counts[row.kind]["applied"] += 1
        if row.status == "refused":
            reasons[str(row.reason)] += 1
    # refused before storing (unknown track or artist): in the audit log only
    for details in session.scalars(
        select(AuditEntry.details).where(
            AuditEntry.action == Action.CONSOLE_CONTROL.value,
            AuditEntry.object_id.like(f"{event_id}:%"),
        )
    ):
        if not isinstance(details, dict) or details.get("event") != event_id:
            continue
        kind = details.get("kind")
        if kind not in counts:
            continue
        if details.get("status") == "refused":
            counts[kind]["refused"] += 1
            reasons[str(details.get("reason"))] += 1
    return counts, reasons


def console_options(session: Session, event_id: str, mode: str) -> dict[str, Any]:
    """The console's options under ``mode`` and their use for ``event_id`` (module docstring).

    ``controls`` lists every kind, available or not, each with the refusal a request of it
    gets under ``mode``; ``counts`` are per kind (accepted, of those applied to a decision,
    refused for any reason), ``refused_by_reason`` per refusal code.
    """
    keys = _keys(session, event_id)
    counts, reasons = _counts(session, event_id)
    controls = []
    for kind in CONTROL_KINDS:
        refused = refusal_for(mode, kind)
        controls.append(
            {
                "kind": kind,
                "available": refused is None,
                **CONTROLS[kind],
                "roles": list(CONTROL_ROLES),
                "refusal": None if refused is None else {"code": refused[0],
                                                         "message": refused[1]},
                **counts[kind],
            }
        )
    asked = sum(c["accepted"] + c["refused"] for c in counts.values())
    return {
        "artist_control": mode,
        "available": [c["kind"] for c in controls if c["available"]],
        "controls": controls,
        "control_roles": list(CONTROL_ROLES),
        "read_roles": list(READ_ROLES),
        "limits": list(COMMON_LIMITS),
        "default_rate_limit": {"rate_per_second": DEFAULT_RATE, "burst": DEFAULT_BURST},
        "keys": keys,
        "used": keys["issued"] > 0 or asked > 0,
        "controls_asked": asked,
        "accepted": sum(c["accepted"] for c in counts.values()),
        "refused": sum(c["refused"] for c in counts.values()),
        "refused_by_reason": dict(sorted(reasons.items())),
    }
