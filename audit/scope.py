"""What an audit is about: which event, judged against which policy, at which instant and date.

``flowaudit audit check`` and every ``flowaudit report`` resolve their options into one
:class:`AuditScope` with :meth:`AuditScope.resolve`; the check context and the report context
are both built from it, so a report presents exactly the findings ``audit check`` gives for the
same options. ``now`` is the instant whose store contents are judged (retention, deadlines);
``as_of`` is the date the law is evaluated at (AI Act obligations start on different dates).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from retention.errors import FlowauditError, InputError, NotFoundError, PolicyError
from retention.models import Event
from retention.policy import Policy, load_policy
from retention.store import EncryptedStore

__all__ = ["AuditScope", "resolve_event_id"]


def _event_ids(session: Session) -> list[str]:
    return list(session.scalars(select(Event.id).order_by(Event.starts_at, Event.id)))


def resolve_event_id(session: Session, event_id: str | None) -> str:
    """The event asked for (it must exist), or the only one in the store."""
    ids = _event_ids(session)
    if event_id is not None:
        if event_id not in ids:
            known = ", ".join(ids) or "none"
            raise NotFoundError(f"no event {event_id!r} in the store; known events: {known}")
        return event_id
    if not ids:
        raise NotFoundError(
            "the store holds no event yet; run `flowaudit run-event` first, or pass --event"
        )
    if len(ids) > 1:
        raise InputError(
            f"the store holds {len(ids)} events ({', '.join(ids)}); choose one with --event"
        )
    return ids[0]


@dataclass(frozen=True)
class AuditScope:
    """One audit's scope. ``event_id`` ``None`` means every event in the store.

    ``policy`` is the policy asked for (``--policy``), else the one the event ran under, else
    the home's default; ``policy_explicit`` says it overrides the policy each event ran under.
    """

    policy: Policy
    now: datetime
    as_of: date
    event_id: str | None = None
    policy_explicit: bool = False

    @classmethod
    def resolve(
        cls,
        store: EncryptedStore,
        *,
        now: datetime,
        event_id: str | None = None,
        policy: str | Policy | None = None,
        default_policy: str | None = None,
        as_of: date | None = None,
        one_event: bool = False,
    ) -> AuditScope:
        """Resolve command options into a scope, the same way for checks and reports.

        ``one_event``: the scope must be a single event (a report); without ``event_id`` the
        store must then hold exactly one. ``default_policy`` (the home's) applies only when
        neither a policy nor an event is given.
        """
        with store.session() as session:
            if one_event or event_id is not None:
                event_id = resolve_event_id(session, event_id)
            ran_under = None
            if event_id is not None:
                event = session.get(Event, event_id)
                ran_under = event.policy_name if event is not None else None
        if isinstance(policy, Policy):
            chosen = policy
        elif policy is not None:
            chosen = load_policy(policy)
        elif ran_under is not None:
            try:
                chosen = load_policy(ran_under)
            except FlowauditError as exc:
                raise PolicyError(
                    f"event {event_id!r} ran under policy {ran_under!r}, which cannot be "
                    f"loaded ({exc}); pass the policy file with --policy"
                ) from exc
        elif default_policy is not None:
            chosen = load_policy(default_policy)
        else:
            raise InputError("no policy to evaluate against; pass --policy")
        if as_of is None:
            as_of = chosen.classification.as_of or now.date()
        return cls(chosen, now, as_of, event_id, policy is not None)
