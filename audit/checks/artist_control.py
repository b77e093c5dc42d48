"""Artists without any option to change the selection (DSA Art 27(1), 27(3)).

Art 27 asks a recommender to state the options its users have to modify or influence its main
parameters. At an event the people whose work the selector steers are the artists on stage:
a policy with ``selection.artist_control = "none"`` leaves them none — a warning, whether or
not Art 27 binds the operator (the DSA statement is published either way).
"""

from __future__ import annotations

from collections.abc import Iterator

from audit.checks._registry import WARNING, CheckContext, rule

__all__ = ["artists_without_options"]


@rule(
    "artists-without-options",
    title="Artists have no option to influence the selection",
    severity=WARNING,
    legal_ref="DSA Art 27(1), Art 27(3)",
)
def artists_without_options(ctx: CheckContext) -> Iterator[tuple]:
    for event, policy in ctx.events_with_policies():
        if policy.selection.artist_control == "none":
            yield (
                f"event {event.id}: policy {policy.name} gives artists no option to veto, pin "
                'or override tracks (selection.artist_control = "none")',
                {"event": event.id, "policy": policy.name, "artist_control": "none"},
            )
