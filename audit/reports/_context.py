"""What a report is built from: one store, one event in it, the policy and the dates.

The scope (:class:`audit.scope.AuditScope`) is the one ``flowaudit audit check`` resolves for
the same options: ``now`` is the instant the report describes ("what is stored now"),
``as_of`` the date the law is evaluated at. Both are parameters, so a report about a past or
future moment is reproducible. The compliance checks run once per context
(:meth:`ReportContext.findings`); every verdict a report states is one of their findings.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from audit.checks import CheckContext, Finding, RuntimeLike, run_checks
from audit.scope import AuditScope, resolve_event_id
from retention.policy import Policy

__all__ = ["ReportContext", "resolve_event_id"]


@dataclass
class ReportContext:
    """Everything a report builder may look at."""

    runtime: RuntimeLike
    scope: AuditScope
    #: for ``compare``: profile name -> context of the same event run under that profile
    peers: dict[str, ReportContext] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    _findings: list[Finding] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.scope.event_id is None:
            raise ValueError("a report is about one event: resolve the scope with one_event")

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
        scope = AuditScope.resolve(
            runtime.store, now=now, event_id=event_id, policy=policy, as_of=as_of, one_event=True
        )
        return cls(runtime, scope)

    @property
    def event_id(self) -> str:
        assert self.scope.event_id is not None  # checked in __post_init__
        return self.scope.event_id

    @property
    def policy(self) -> Policy:
        return self.scope.policy

    @property
    def now(self) -> datetime:
        return self.scope.now

    @property
    def as_of(self) -> date:
        return self.scope.as_of

    @property
    def policy_explicit(self) -> bool:
        return self.scope.policy_explicit

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A read-only session on the store's database."""
        with self.runtime.store.session() as session:
            yield session

    def check_context(self) -> CheckContext:
        """The same scope, for :func:`audit.checks.run_checks`."""
        return CheckContext.from_scope(self.runtime, self.scope)

    def findings(self) -> list[Finding]:
        """Every registered rule's findings on this scope, run once and kept for every kind."""
        if self._findings is None:
            self._findings = run_checks(self.check_context())
        return self._findings
