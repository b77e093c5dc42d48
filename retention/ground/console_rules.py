"""What the DJ console lets each policy and each key do: decided here, once.

The console (:mod:`flowaudit.console`) enforces these rules, the live crowd step
(:mod:`pipeline.live.controls`) applies what they let through, and the DSA Art 27 report
(:mod:`audit.reports.gather.console`) states them; all three read this module.

- A policy's ``selection.artist_control`` decides the control kinds: ``none`` takes none,
  ``partial`` vetoes and pins, ``full`` overrides too; an unknown mode takes none.
- A key has one role: ``artist`` keys post and read controls, ``viewer`` keys read them,
  ``scorer`` keys read feature windows and post scores.
- A key's rate limit, unless issued with its own, is a token bucket of ``DEFAULT_BURST``
  requests refilled at ``DEFAULT_RATE`` per second.
"""

from __future__ import annotations

__all__ = [
    "CONTROL_KINDS",
    "KINDS_BY_MODE",
    "KEY_ROLES",
    "CONTROL_ROLES",
    "READ_ROLES",
    "SCORER_ROLES",
    "DEFAULT_RATE",
    "DEFAULT_BURST",
    "VETO_LEAVES_NO_TRACK",
    "allowed_kinds",
    "refusal_for",
]

CONTROL_KINDS = ("override", "veto", "pin")
#: the control kinds each ``selection.artist_control`` mode lets through
KINDS_BY_MODE: dict[str, tuple[str, ...]] = {
    "none": (),
    "partial": ("veto", "pin"),
    "full": ("override", "veto", "pin"),
}
#: every key role; the roles that may post a control; the roles that may read the live event
KEY_ROLES = ("artist", "scorer", "viewer")
CONTROL_ROLES = ("artist",)
READ_ROLES = ("artist", "viewer")
SCORER_ROLES = ("scorer",)  # the feature feed and score posts
DEFAULT_RATE = 10.0  # requests per second, refilled continuously
DEFAULT_BURST = 40  # bucket size: the console page's start-up burst fits in it

#: the refusal of a veto that would leave the selector nothing it may play
VETO_LEAVES_NO_TRACK = (
    "veto_leaves_no_track",
    "this veto would leave no track to play (every other one is vetoed); "
    "GET /v1/events/{id}/controls lists the vetoes",
)


def allowed_kinds(mode: str) -> tuple[str, ...]:
    """The control kinds a policy's ``artist_control`` mode accepts (unknown mode: none)."""
    return KINDS_BY_MODE.get(mode, ())


def refusal_for(mode: str, kind: str) -> tuple[str, str] | None:
    """The refusal (code, message) of a ``kind`` control under ``mode``, or ``None``."""
    if kind in allowed_kinds(mode):
        return None
    if mode == "partial":
        return (
            "artist_control_partial",
            f"the event's policy sets artist_control = partial: vetoes and pins only, no {kind}s",
        )
    if mode == "none":
        return (
            "artist_control_none",
            "the event's policy sets artist_control = none: the selector alone decides; "
            "overrides, vetoes and pins are refused",
        )
    return ("artist_control_none", f"artist_control {mode!r} allows no {kind}")
