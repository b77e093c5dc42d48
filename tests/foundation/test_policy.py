"""Policies: every shipped profile validates; bad files fail with the key and the fix."""

from __future__ import annotations

from dataclasses import fields
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retention.errors import NotFoundError, PolicyError
from retention.ground.durations import format_duration, parse_duration
from retention.ground.quasi import QUASI_IDENTIFIERS, SENSITIVE_ATTRIBUTES
from retention.policy import (
    SCHEMA,
    SECTION_TYPES,
    Policy,
    list_policies,
    load_policy,
    parse_policy,
    policy_diff,
)

SHIPPED = ["apple-music-2025", "privacy-by-default", "spotify-2026", "tiktok-2026"]


def test_every_shipped_policy_loads() -> None:
    assert list_policies() == SHIPPED
    for name in SHIPPED:
        policy = load_policy(name)
        assert policy.name == name
        assert len(policy.sha256) == 64


@pytest.mark.parametrize(
    "name, raw, metadata, control",
    [
        ("spotify-2026", timedelta(hours=72), None, "none"),
        ("apple-music-2025", timedelta(hours=24), timedelta(days=365), "partial"),
        ("tiktok-2026", timedelta(0), timedelta(days=7), "full"),
        ("privacy-by-default", timedelta(0), timedelta(days=30), "full"),
    ],
)
def test_profiles_carry_the_article_numbers(
    name: str, raw: timedelta, metadata: timedelta | None, control: str
) -> None:
    policy = load_policy(name)
    assert policy.retention.raw_audio == raw
    assert policy.retention.metadata == metadata
    assert policy.selection.artist_control == control


VALID = """
[policy]
name = "t"
controller = "c"
purposes = ["p"]
"""


# fmt: off
@pytest.mark.parametrize("extra, message", [
    ('[retention]\nraw_audio = "72"', 'retention.raw_audio = \'72\': "72" has no unit; write "72h"'),  # invalid
    ('[retention]\nmetadata = "forever"', "retention.metadata"),                                    # invalid
    ('[capture]\nvad_aggressiveness = 5', "must be between 0 and 3"),                               # invalid
    ('[capture]\nstore_speech = "no"', "expected true or false"),                                   # invalid
    ('[selection]\nartist_control = "some"', "one of none, partial, full"),                         # invalid
    ('[capture]\nunknown = 1', "unknown key capture.unknown"),                                      # invalid
    ('[nonsense]\nx = 1', "unknown section [nonsense]"),                                            # invalid
    ('[capture]\nbiometrics = true', "art9_exception"),                                             # impossible
    ('[capture]\nrequire_consent = false', "require_consent = true"),                               # impossible
    ('[retention]\nmetadata = "1d"\nanonymise_metadata_after = "3d"', "later than"),                # impossible
    ('[reid]\nsensitive = ["zone"]', "also a quasi-identifier"),                                    # impossible
])
# fmt: on
def test_invalid_policies_name_file_key_and_fix(tmp_path: Path, extra: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(VALID + extra + "\n")
    with pytest.raises(PolicyError) as excinfo:
        load_policy(path)
    text = str(excinfo.value)
    assert str(path) in text
    assert message in text


def test_missing_required_key_and_broken_toml(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[policy]\nname = "x"\n')
    with pytest.raises(PolicyError, match="policy.controller is required"):
        load_policy(path)
    path.write_text("[policy\n")
    with pytest.raises(PolicyError, match="not valid TOML"):
        load_policy(path)


def test_unknown_policy_name_lists_the_shipped_ones() -> None:
    with pytest.raises(NotFoundError, match="privacy-by-default"):
        load_policy("no-such-policy")


def test_diff_reports_only_differences() -> None:
    rows = dict((k, (a, b)) for k, a, b in policy_diff(load_policy("spotify-2026"),
                                                         load_policy("tiktok-2026")))
    assert rows["retention.raw_audio"] == ("72h", "0h")
    assert rows["retention.metadata"] == ("indefinite", "7d")
    assert "reid.k_min" not in rows


@given(st.text())
def test_duration_parser_never_crashes(text: str) -> None:
    try:
        value = parse_duration(text)
    except ValueError as exc:
        assert str(exc)
    else:
        assert value is None or value >= timedelta(0)


@given(st.integers(0, 10**7), st.sampled_from("smhdw"))
def test_duration_round_trip(amount: int, unit: str) -> None:
    value = parse_duration(f"{amount}{unit}")
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_policy_round_trips_through_as_dict(name: str) -> None:
    policy = load_policy(name)
    raw = Path(policy.source).read_bytes()
    again = parse_policy(policy.as_dict(), source=policy.source, raw=raw)
    assert again == policy
    assert again.flat() == policy.flat()


def test_schema_and_section_dataclasses_are_one_declaration() -> None:
    sections = [f.name for f in fields(Policy) if f.name not in ("source", "sha256")]
    assert sections == list(SCHEMA) == list(SECTION_TYPES)
    for section, cls in SECTION_TYPES.items():
        assert [f.name for f in fields(cls)] == list(SCHEMA[section]), section
        assert type(getattr(load_policy("spotify-2026"), section)) is cls


# fmt: off
@pytest.mark.parametrize("section, key, kind", [
    ("retention", "raw_audio", "duration"),
    ("classification", "as_of", "date"),
    ("reid", "quasi_identifiers", "list"),
    ("reid", "hierarchies", "table"),
    ("capture", "vad_aggressiveness", "int"),
    ("reid", "t_max", "float"),
    ("capture", "store_speech", "bool"),
    ("policy", "controller", "str"),
])
# fmt: on
def test_the_loader_enforces_the_kind_the_type_declares(section: str, key: str, kind: str) -> None:
    assert SCHEMA[section][key].kind == kind


def test_choices_come_from_the_literal_types() -> None:
    assert SCHEMA["selection"]["artist_control"].choices == ("none", "partial", "full")
    assert SCHEMA["policy"]["lawful_basis"].choices[0] == "consent"


def test_defaults_are_typed_and_come_from_the_ground_floor(tmp_path: Path) -> None:
    path = tmp_path / "minimal.toml"
    path.write_text(VALID + "[classification]\nas_of = 2026-06-21\n")
    policy = load_policy(path)
    assert policy.reid.quasi_identifiers == list(QUASI_IDENTIFIERS)
    assert policy.reid.sensitive == list(SENSITIVE_ATTRIBUTES)
    assert policy.retention.raw_audio == timedelta(0)
    assert policy.retention.audit_log == timedelta(days=183)
    assert policy.classification.as_of == date(2026, 6, 21)
    assert policy.selection.adaptive_flow_threshold == 40.0
    assert policy.retention_for("metadata") == timedelta(days=30)
    with pytest.raises(PolicyError, match="use raw_audio or metadata"):
        policy.retention_for("pcm")


def test_policies_share_no_mutable_default_and_as_dict_is_a_copy(tmp_path: Path) -> None:
    path = tmp_path / "minimal.toml"
    path.write_text(VALID)
    first = load_policy(path)
    first.reid.quasi_identifiers.append("seat")
    first.as_dict()["policy"]["recipients"].append("broker")
    second = load_policy(path)
    assert second.reid.quasi_identifiers == list(QUASI_IDENTIFIERS)
    assert first.policy.recipients == [] == second.policy.recipients
