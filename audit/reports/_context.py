"""What a report is built from: one store, one event in it, the policy and the dates.

``now`` is the instant the report describes ("what is stored now"); ``as_of`` is the date the
law is evaluated at (AI Act obligations start on different dates). Both are parameters, so a
report about a past or future moment is reproducible.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from audit.checks import CheckContext, RuntimeLike
from retention.errors import FlowauditError, InputError, NotFoundError, PolicyError
from retention.models import Event
from retention.policy import Policy, load_policy

__all__ = ["ReportContext", "resolve_event_id"]


def resolve_event_id(session: Session, event_id: str | None) -> str:
    """The event a report is about: the one asked for, or the only one in the store."""
    ids = list(session.scalars(select(Event.id).order_by(Event.starts_at, Event.id)))
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


@dataclass
class ReportContext:
    """Everything a report builder may look at."""

    runtime: RuntimeLike
    event_id: str
    policy: Policy
    now: datetime
    as_of: date
    policy_explicit: bool = False
    #: for ``compare``: profile name -> context of the same event run under that profile
    peers: dict[str, ReportContext] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(
        cls,
        runtime: RuntimeLike,
        *,
        now: datetime,
        event_id: str | None = None,
        policy: str | Policy | None = None,
        as_of: date | None = None,
    ) -> ReportContext:
        """Resolve the event and the policy it ran under (or the one given)."""
        with runtime.store.session() as session:
            event_id = resolve_event_id(session, event_id)
            event = session.get(Event, event_id)
            assert event is not None
            policy_name = event.policy_name
        explicit = policy is not None
        if isinstance(policy, Policy):
            loaded = policy
        elif policy is not None:
            loaded = load_policy(policy)
        else:
            try:
                loaded = load_policy(policy_name)
            except FlowauditError as exc:
                raise PolicyError(
                    f"event {event_id!r} ran under policy {policy_name!r}, which cannot be "
                    f"loaded ({exc}); pass the policy file with --policy"
                ) from exc
        if as_of is None:
            as_of = loaded.classification.as_of or now.date()
        return cls(runtime, event_id, loaded, now, as_of, explicit)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A read-only session on the store's database."""
        with self.runtime.store.session() as session:
            yield session

    def check_context(self) -> CheckContext:
        """The same scope, for :func:`audit.checks.run_checks`."""
        return CheckContext(
            runtime=self.runtime,
            policy=self.policy,
            now=self.now,
            as_of=self.as_of,
            event_id=self.event_id,
            policy_explicit=self.policy_explicit,
        )
