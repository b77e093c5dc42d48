"""The check registry: discovery, registration errors, crash handling, ordering, policies."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

import audit.checks
from audit.checks import CheckContext, Finding, get_rule, rule, rules, run_checks
from audit.checks._registry import _RULES
from flowaudit.runtime import Runtime
from retention.errors import InputError, NotFoundError, RetentionError
from retention.policy import load_policy

from .scene import OWN_RULES, Scene

NOW = datetime(2026, 6, 22, tzinfo=UTC)


@pytest.fixture
def scratch_rules() -> Iterator[list[str]]:
    """Ids registered by a test are removed again afterwards."""
    added: list[str] = []
    yield added
    for rule_id in added:
        _RULES.pop(rule_id, None)


def _ctx(runtime: Runtime, **kwargs) -> CheckContext:  # type: ignore[no-untyped-def]
    return CheckContext(
        runtime=runtime,
        policy=load_policy("privacy-by-default"),
        now=NOW,
        as_of=date(2026, 6, 22),
        **kwargs,
    )


def test_every_rule_module_is_discovered() -> None:
    package = Path(audit.checks.__file__).parent
    modules = {m.name for m in pkgutil.iter_modules([str(package)]) if not m.name.startswith("_")}
    registered = {r.module.rsplit(".", 1)[-1] for r in rules()}
    assert registered == modules
    assert set(OWN_RULES) <= {r.id for r in rules()}
    for item in rules():
        assert item.title and item.legal_ref and item.severity in ("error", "warning", "info")
        assert importlib.import_module(item.module).__doc__  # each rule module says why


def test_bad_registrations_are_refused(scratch_rules: list[str]) -> None:
    rules()  # make sure the shipped rules are loaded
    with pytest.raises(ValueError, match="severity"):
        rule("x-bad", title="t", severity="fatal", legal_ref="r")
    with pytest.raises(ValueError, match="registered twice"):
        # same id as an existing rule, from another module
        rule("speech-stored", title="t", severity="error", legal_ref="r")(lambda ctx: [])
    with pytest.raises(NotFoundError, match="unknown check 'nope'"):
        get_rule("nope")


def test_a_crashing_rule_is_an_error_finding(
    sqlite_runtime: Runtime, scratch_rules: list[str]
) -> None:
    @rule("x-crash", title="Crashes", severity="warning", legal_ref="none")
    def crash(ctx: CheckContext) -> Iterator[tuple]:
        raise ZeroDivisionError("secret-looking detail")
        yield  # pragma: no cover

    @rule("x-refused", title="Refused", severity="info", legal_ref="none")
    def refused(ctx: CheckContext) -> Iterator[tuple]:
        raise RetentionError("record abc expired")
        yield  # pragma: no cover

    scratch_rules += ["x-crash", "x-refused"]
    findings = run_checks(_ctx(sqlite_runtime), ["x-crash", "x-refused"])
    assert [(f.rule_id, f.severity) for f in findings] == [
        ("x-crash", "error"),
        ("x-refused", "error"),
    ]
    assert "ZeroDivisionError" in findings[0].message
    assert "secret-looking" not in findings[0].message  # a bug's text is not echoed
    assert "record abc expired" in findings[1].message  # our errors are safe to show


def test_yield_forms_and_ordering(sqlite_runtime: Runtime, scratch_rules: list[str]) -> None:
    @rule("x-forms", title="Forms", severity="info", legal_ref="ref")
    def forms(ctx: CheckContext) -> Iterator[object]:
        yield "plain", {"n": 1}
        yield "warned", {"n": 2}, "warning"
        yield Finding("x-forms", "error", "Forms", "ref", "whole", {"n": 3})

    @rule("x-badsev", title="Bad", severity="info", legal_ref="ref")
    def bad(ctx: CheckContext) -> Iterator[object]:
        yield "oops", {}, "catastrophic"

    scratch_rules += ["x-forms", "x-badsev"]
    findings = run_checks(_ctx(sqlite_runtime), ["x-forms", "x-badsev"])
    assert [(f.rule_id, f.severity, f.message) for f in findings] == [
        ("x-badsev", "error", "rule could not be evaluated (ValueError)"),
        ("x-forms", "error", "whole"),
        ("x-forms", "warning", "warned"),
        ("x-forms", "info", "plain"),
    ]
    assert findings[3].as_dict() == {
        "rule_id": "x-forms",
        "severity": "info",
        "title": "Forms",
        "legal_ref": "ref",
        "message": "plain",
        "evidence": {"n": 1},
    }


def test_unknown_only_is_refused(sqlite_runtime: Runtime) -> None:
    with pytest.raises(InputError, match="unknown check 'nope'"):
        run_checks(_ctx(sqlite_runtime), ["nope"])


def test_policy_for_uses_the_events_own_policy(sqlite_runtime: Runtime) -> None:
    Scene(sqlite_runtime, "spotify-2026")
    ctx = _ctx(sqlite_runtime)
    with ctx.session() as session:
        (event,) = ctx.events(session)
    assert ctx.policy_for(event).name == "spotify-2026"
    assert ctx.policy_for(None).name == "privacy-by-default"
    forced = _ctx(sqlite_runtime, policy_explicit=True)
    assert forced.policy_for(event).name == "privacy-by-default"
    event.policy_name = "no-such-policy"  # a policy file that is gone: fall back, do not crash
    assert _ctx(sqlite_runtime).policy_for(event).name == "privacy-by-default"


def test_event_filter(sqlite_runtime: Runtime) -> None:
    Scene(sqlite_runtime)
    with _ctx(sqlite_runtime).session() as session:
        assert len(_ctx(sqlite_runtime).events(session)) == 1
        assert _ctx(sqlite_runtime, event_id="other").events(session) == []
