"""The compliance-check registry: rules are small registered functions that return findings.

A rule proves something *from the store and the audit log*, never from configuration alone.
Write one rule per module in ``audit/checks/`` (any module whose name does not start with
``_`` is imported automatically by :func:`load_rules`)::

    from audit.checks import CheckContext, rule

    @rule(
        "speech-stored",
        title="Speech stored while store_speech = false",
        severity="error",
        legal_ref="GDPR Art 5(1)(c); Code pénal Art 226-1",
    )
    def speech_stored(ctx: CheckContext):
        with ctx.session() as session:
            ...
            if bad_ids:
                yield "3 raw segments hold speech frames", {"count": 3, "record_ids": [...]}

A rule function takes a :class:`CheckContext` and yields, per violation, either
``(message, evidence)`` — the registry fills in the rule's id, title, severity and legal
reference — or ``(message, evidence, severity)`` to use another severity for one case (e.g. a
warning where an obligation does not apply yet), or a complete :class:`Finding`. Evidence is
JSON-friendly: counts, record/bucket ids (pseudonyms at most, never serials or free text) and
ISO times; :func:`sample` trims long id lists. Yield nothing when the rule holds.

A rule that raises becomes an ``error`` finding of that rule ("could not be evaluated"), so a
broken check can never make a deployment gate pass silently.
"""

from __future__ import annotations

import contextlib
import importlib
import pkgutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from audit.log.checkpoints import Anchor
from audit.scope import AuditScope
from retention.errors import FlowauditError, InputError, NotFoundError
from retention.models import Event
from retention.policy import Policy, load_policy

__all__ = [
    "ERROR",
    "WARNING",
    "INFO",
    "SEVERITIES",
    "Finding",
    "Rule",
    "RuntimeLike",
    "CheckContext",
    "rule",
    "rules",
    "get_rule",
    "load_rules",
    "run_checks",
    "sample",
]

ERROR, WARNING, INFO = "error", "warning", "info"
SEVERITIES = (ERROR, WARNING, INFO)
SAMPLE_LIMIT = 20


@dataclass(frozen=True)
class Finding:
    """One violation (or note) found by a rule, with the evidence that shows it."""

    rule_id: str
    severity: str  # "error" | "warning" | "info"
    title: str
    legal_ref: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


RuleItem = Any  # Finding | (message, evidence) | (message, evidence, severity)
RuleFunc = Callable[["CheckContext"], Iterable[RuleItem]]


@dataclass(frozen=True)
class Rule:
    """A registered check: metadata plus the function that evaluates it."""

    id: str
    title: str
    severity: str
    legal_ref: str
    func: RuleFunc
    module: str = ""

    def finding(self, message: str, evidence: dict[str, Any] | None = None) -> Finding:
        return Finding(self.id, self.severity, self.title, self.legal_ref, message, evidence or {})

    def evaluate(self, ctx: CheckContext) -> list[Finding]:
        """Run the rule; a crash becomes an error finding rather than a silent pass."""
        out: list[Finding] = []
        try:
            for item in self.func(ctx):
                if isinstance(item, Finding):
                    out.append(item)
                elif len(item) == 3:
                    message, evidence, severity = item  # type: ignore[misc]
                    if severity not in SEVERITIES:
                        raise ValueError(f"severity {severity!r}")
                    out.append(replace(self.finding(message, evidence), severity=severity))
                else:
                    message, evidence = item  # type: ignore[misc]
                    out.append(self.finding(message, evidence))
        except FlowauditError as exc:
            out.append(
                Finding(
                    self.id,
                    ERROR,
                    self.title,
                    self.legal_ref,
                    f"rule could not be evaluated: {exc}",
                    {"exception": type(exc).__name__},
                )
            )
        except Exception as exc:  # a bug in a rule must not let a gate pass
            out.append(
                Finding(
                    self.id,
                    ERROR,
                    self.title,
                    self.legal_ref,
                    f"rule could not be evaluated ({type(exc).__name__})",
                    {"exception": type(exc).__name__},
                )
            )
        return out


_RULES: dict[str, Rule] = {}


def rule(id: str, *, title: str, severity: str, legal_ref: str) -> Callable[[RuleFunc], RuleFunc]:
    """Register ``fn(ctx) -> Iterable[(message, evidence) | Finding]`` under ``id``."""
    if severity not in SEVERITIES:
        raise ValueError(f"rule {id!r}: severity {severity!r}; use one of {SEVERITIES}")

    def decorate(func: RuleFunc) -> RuleFunc:
        existing = _RULES.get(id)
        if existing is not None and existing.module != func.__module__:
            raise ValueError(f"rule id {id!r} registered twice ({existing.module})")
        _RULES[id] = Rule(id, title, severity, legal_ref, func, func.__module__)
        return func

    return decorate


_loaded = False


def load_rules() -> None:
    """Import every rule module in ``audit/checks/`` (names not starting with ``_``)."""
    global _loaded
    if _loaded:
        return
    package_dir = Path(__file__).resolve().parent
    for info in sorted(pkgutil.iter_modules([str(package_dir)]), key=lambda m: m.name):
        if not info.name.startswith("_"):
            importlib.import_module(f"audit.checks.{info.name}")
    _loaded = True


def rules() -> list[Rule]:
    """Every registered rule, by id."""
    load_rules()
    return [_RULES[k] for k in sorted(_RULES)]


def get_rule(rule_id: str) -> Rule:
    load_rules()
    try:
        return _RULES[rule_id]
    except KeyError:
        raise NotFoundError(
            f"unknown check {rule_id!r}; known checks: {', '.join(sorted(_RULES))}"
        ) from None


class RuntimeLike(Protocol):
    """What a check needs of flowaudit's Runtime (typed here so audit never imports flowaudit).

    ``store`` is a :class:`retention.store.EncryptedStore`, ``keys`` its key provider (with
    ``is_bucket_destroyed`` / ``bucket_ids``), ``settings`` has ``signing_key_file``.
    """

    engine: Engine
    store: Any
    keys: Any
    settings: Any


@dataclass
class CheckContext:
    """Everything a rule may look at. ``event_id`` narrows the checks to one event.

    Build it from an :class:`~audit.scope.AuditScope` with :meth:`from_scope` (as
    ``audit check`` and the reports do). ``policy`` is the scope's policy (``--policy``, else
    the event's, else the home's default). Per-event rules should use :meth:`policy_for`, which
    loads the policy the event actually ran under (its row stores the name) unless
    ``policy_explicit`` says the caller's policy overrides it.
    """

    runtime: RuntimeLike
    policy: Policy
    now: datetime
    as_of: date
    event_id: str | None = None
    policy_explicit: bool = False
    anchor: Anchor | None = None  # a previously exported audit anchor, if given
    _policies: dict[str, Policy] = field(default_factory=dict, repr=False)

    @classmethod
    def from_scope(
        cls, runtime: RuntimeLike, scope: AuditScope, anchor: Anchor | None = None
    ) -> CheckContext:
        """The check context of a scope (``anchor``: an exported audit anchor, if given)."""
        return cls(
            runtime=runtime,
            policy=scope.policy,
            now=scope.now,
            as_of=scope.as_of,
            event_id=scope.event_id,
            policy_explicit=scope.policy_explicit,
            anchor=anchor,
        )

    @property
    def scope(self) -> AuditScope:
        return AuditScope(self.policy, self.now, self.as_of, self.event_id, self.policy_explicit)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        """A read-only session on the store's database."""
        with self.runtime.store.session() as session:
            yield session

    def events(self, session: Session) -> list[Event]:
        """The events in scope (one, if ``event_id`` is set)."""
        query = select(Event).order_by(Event.starts_at, Event.id)
        if self.event_id is not None:
            query = query.where(Event.id == self.event_id)
        return list(session.scalars(query))

    def events_with_policies(self) -> list[tuple[Event, Policy]]:
        """Each event in scope with the policy it ran under: the loop of every policy rule."""
        with self.session() as session:
            events = self.events(session)
        return [(event, self.policy_for(event)) for event in events]

    def policy_for(self, event: Event | None) -> Policy:
        """The policy an event ran under (falls back to ``policy`` if it cannot be loaded)."""
        if event is None or self.policy_explicit:
            return self.policy
        name = event.policy_name
        if name not in self._policies:
            try:
                self._policies[name] = load_policy(name)
            except FlowauditError:
                self._policies[name] = self.policy
        return self._policies[name]


def sample(ids: Iterable[Any], limit: int = SAMPLE_LIMIT) -> list[Any]:
    """The first ``limit`` ids (sorted), so evidence stays readable; give the count alongside."""
    return sorted(ids)[:limit]


def run_checks(ctx: CheckContext, only: Sequence[str] | None = None) -> list[Finding]:
    """Run every rule (or the ids in ``only``); findings ordered by severity, then rule id."""
    selected = rules()
    if only:
        known = {r.id for r in selected}
        unknown = [r for r in only if r not in known]
        if unknown:
            raise InputError(
                f"unknown check {unknown[0]!r}; known checks: {', '.join(sorted(known))}"
            )
        selected = [r for r in selected if r.id in set(only)]
    findings: list[Finding] = []
    for item in selected:
        findings.extend(item.evaluate(ctx))
    order = {s: i for i, s in enumerate(SEVERITIES)}
    findings.sort(key=lambda f: (order.get(f.severity, 99), f.rule_id))
    return findings
