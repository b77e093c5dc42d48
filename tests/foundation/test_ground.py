"""The ground floor: each fact and parser is decided once and behaves the same for every caller."""

from __future__ import annotations

import ast
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retention.errors import ConfigError, InputError
from retention.ground import (
    QUASI_IDENTIFIERS,
    SENSITIVE_ATTRIBUTES,
    Action,
    coerce_utc,
    iso_utc,
    parse_date_option,
    parse_duration_option,
    parse_finite_duration,
    parse_time,
    parse_utc,
    read_toml,
)

ROOT = Path(__file__).resolve().parents[2]
aware = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.timezones()
)


@given(aware)
def test_iso_round_trip_is_the_same_instant_in_utc(moment: datetime) -> None:
    back = parse_utc(iso_utc(moment))
    # compared in UTC: PEP 495 makes a time in a DST gap unequal to every other zone's time
    assert back == moment.astimezone(UTC)
    assert back.utcoffset() == timedelta(0)


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1)))
def test_a_time_without_zone_is_utc_in_every_form(naive: datetime) -> None:
    expected = naive.replace(tzinfo=UTC)
    assert coerce_utc(naive) == expected
    assert parse_utc(naive.isoformat()) == expected
    assert parse_utc(naive.isoformat() + "Z") == expected


def test_offsets_are_converted_not_dropped() -> None:
    paris = datetime(2026, 6, 21, 22, 0, tzinfo=timezone(timedelta(hours=2)))
    assert parse_utc("2026-06-21T22:00:00+02:00") == paris
    assert parse_utc("2026-06-21T22:00:00+02:00").hour == 20


@given(st.text(max_size=40))
def test_parsers_never_raise_anything_but_their_documented_error(text: str) -> None:
    for call, error in (
        (lambda: parse_utc(text), ValueError),
        (lambda: coerce_utc(text), ValueError),
        (lambda: parse_time(text, "--now"), InputError),
        (lambda: parse_date_option(text, "--as-of"), InputError),
        (lambda: parse_duration_option(text, "--duration"), InputError),
        (lambda: parse_finite_duration(text, "--every", positive=True), InputError),
    ):
        try:
            call()
        except error:
            pass


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda: parse_time("21 June", "--now"), "--now '21 June' is not an ISO 8601 time"),
        (lambda: parse_date_option("tomorrow", "--as-of"), "--as-of 'tomorrow' is not a date"),
        (lambda: parse_duration_option("72", "--duration"), 'write "72h"'),
        (lambda: parse_finite_duration("indefinite", "--duration"), "must be a finite duration"),
        (lambda: parse_finite_duration("0h", "--every", positive=True), "must be a positive"),
    ],
)
def test_user_errors_name_the_option_and_the_fix(call, expected: str) -> None:
    with pytest.raises(InputError) as caught:
        call()
    assert expected in str(caught.value)


def test_coerce_refuses_what_is_not_a_time() -> None:
    for value in (None, 12, b"2026-06-21", ["2026"]):
        with pytest.raises(ValueError):
            coerce_utc(value)


def test_read_toml_names_the_file_in_one_line(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('a = "b"\n', encoding="utf-8")
    assert read_toml(good, what="x") == {"a": "b"}
    broken = tmp_path / "broken.toml"
    broken.write_bytes(b"a = \n\xff")
    with pytest.raises(ConfigError) as caught:
        read_toml(broken, what=f"config '{broken}'", error=ConfigError)
    assert str(caught.value).startswith(f"config '{broken}': not valid TOML")
    assert "\n" not in str(caught.value)
    with pytest.raises(InputError, match="does not exist"):
        read_toml(tmp_path / "missing.toml", what="event file 'missing.toml'")


def test_action_names_are_unique_and_dotted() -> None:
    values = [a.value for a in Action]
    assert len(values) == len(set(values))
    assert all(v.count(".") == 1 and v == v.lower() for v in values)
    assert f"{Action.RAW_PUT}" == "raw.put" and str(Action.PURGE_RECEIPT) == "purge.receipt"


def test_no_audit_action_is_written_as_a_bare_string() -> None:
    """Every action literal in the library is one of Action's values, spelt through Action."""
    names = {a.value for a in Action}
    offenders = []
    for package in ("flowaudit", "pipeline", "retention", "audit"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name == "actions.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and node.value in names:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}")
    assert not offenders, "use retention.ground.Action: " + ", ".join(offenders)


def test_quasi_identifiers_are_declared_once() -> None:
    assert len(set(QUASI_IDENTIFIERS)) == len(QUASI_IDENTIFIERS)
    assert not set(QUASI_IDENTIFIERS) & set(SENSITIVE_ATTRIBUTES)
